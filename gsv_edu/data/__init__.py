"""Everything that writes or reads a prepared folder: list file → prepared folder → training batches.

    layout    the prepared folder: file names, prepare_info.json, the duration filter, how the
              HuBERT and spectrogram frames line up (the one owner of all of it)
    listfile  reading a GPT-SoVITS list file (wav_path|speaker|language|text)
    prepare   the preparation itself: text → phones, audio → 32 kHz WAV + content features,
              optionally semantic codes (`python -m gsv_edu.prepare` is its command line)
    dataset   TextAudioSpeakerDataset / Collate: the items of a prepared folder, the official way
    sampler   DistributedBucketSampler: length-bucketed batches, this process's share
    loader    the DataLoader of training (dataset + sampler + collate, resumable mid-epoch)
"""
