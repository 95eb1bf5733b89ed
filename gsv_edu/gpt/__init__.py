"""The GPT stage (s1) of GPT-SoVITS: phonemes (+ BERT features) → 25 Hz semantic tokens.

Mirrors `GPT_SoVITS/AR/` @48b1a01, one module per idea:

- `config`      GPTConfig: the official s1 YAML / `ckpt["config"]` dict, typed; presets
- `embedding`   TokenEmbedding, SinePositionalEmbedding (AR/modules/embedding.py)
- `transformer` post-LN layers with packed QKV (AR/modules/transformer.py, activation.py)
- `t2s_model`   Text2SemanticDecoder: training losses and `infer_panel` (AR/models/t2s_model.py)
- `sampling`    repetition penalty → top-p → temperature → top-k → exponential race (AR/models/utils.py)
- `kv_cache`    the fast incremental decoder behind `infer_panel`
- `optim`       ScaledAdam and the warm-up/cosine schedule (AR/modules/optim.py, lr_schedulers.py)
- `dataset`, `sampler`  training items, batches and the bucket sampler (AR/data/)

Weight files (official exports, pretrained s1, Lightning checkpoints) are read and written by
`gsv_edu.weights` (`read_gpt_file`, `load_gpt`, `save_gpt`), the one owner of weight files.
"""
