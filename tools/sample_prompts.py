"""The texts of the sample corpus in data/sample/ (read by tools/build_sample_corpus.py).

Three groups:

- ENGLISH_PROMPTS: our own sentences, read by all three English synthetic voices (flite awb,
  flite rms, festival slt), so the corpus is *parallel*: the same content in three voices.
  Written to cover every ARPAbet phoneme (the rare ones ZH, OY, UH, AW, TH, DH, NG, JH in
  several words) with declaratives, questions, an exclamation and numbers spelled as words,
  each short enough (about 10-14 syllables) to last 2-4.5 s in the slowest voice and long
  enough to last 2 s in the fastest. Every prompt carries its split: "heldout" prompts are
  kept out of content-encoder pre-training and used to evaluate it; the "train" prompts alone
  still cover every phoneme (checked by the build script and by tests/test_sample_corpus.py).
- MANDARIN_PROMPTS: our own Hanzi sentences for the espeak-ng Mandarin voice, covering every
  initial, the common finals (including ü-finals, -iong, -ueng, er) and all four tones plus
  the neutral tone, with tone-sandhi contexts: third-tone sequences (你好, 很好, 我想买,
  展览馆), 一 before tone 4 and before tones 1-3 (一位, 一下, 一斤, 一双, 一起), 不 before
  tone 4 (不是, 不会).
- ASTERISK_PROMPTS: basenames of Asterisk core sound prompts (recorded by Allison Smith,
  CC-BY-SA-3.0) whose transcript is a clean sentence and whose trimmed audio lasts 2-4.5 s.
  Their text is *not* written here: the build script reads it from the package's transcript
  file (core-sounds-en.txt) and normalises it, so the provenance of every text is checkable.
"""
from __future__ import annotations

# (prompt_id, split, text). Six of thirty are held out, spread over the list.
ENGLISH_PROMPTS: list[tuple[str, str, str]] = [
    ("en_001", "train", "A young boy found a shiny coin beside the oak tree."),
    ("en_002", "train", "Could you bring the yellow chair into the kitchen?"),
    ("en_003", "train", "She measured the beige curtains twice before cutting them."),
    ("en_004", "train", "Three thick books were hidden behind the wooden shelf."),
    ("en_005", "heldout", "My father usually reads the news at seven."),
    ("en_006", "train", "Why did the cowboy leave his horse outside?"),
    ("en_007", "train", "The garage door was open, so the cat ran away."),
    ("en_008", "train", "Please judge the cheese contest fairly and quickly."),
    ("en_009", "train", "Twenty four sheep were grazing on the green hill."),
    ("en_010", "heldout", "Is the museum open on Sunday mornings in June?"),
    ("en_011", "train", "We should put more sugar in the cookies."),
    ("en_012", "train", "The loud noise woke everyone in the village."),
    ("en_013", "train", "He enjoys playing the violin with his brother."),
    ("en_014", "train", "Her vision of the future was bright and hopeful."),
    ("en_015", "heldout", "Eighteen ships sailed through the harbor before dawn."),
    ("en_016", "train", "What time does the last train leave for the city?"),
    ("en_017", "train", "The pleasure of reading a good book never fades."),
    ("en_018", "train", "A thousand birds flew south when the weather changed."),
    ("en_019", "train", "Did you remember to water the plants this morning?"),
    ("en_020", "heldout", "The chef cooked fresh fish with garlic and lemon."),
    ("en_021", "train", "Nine hundred people joined the march through the square."),
    ("en_022", "train", "Would you like tea or coffee with your breakfast?"),
    ("en_023", "train", "The bridge was closed because of the heavy snow."),
    ("en_024", "train", "Our neighbor keeps a pair of goats in her yard."),
    ("en_025", "heldout", "Thank you for waiting, the doctor will see you now."),
    ("en_026", "train", "Seventy two red balloons floated above the crowd."),
    ("en_027", "train", "Those old photographs remind me of my grandmother."),
    ("en_028", "train", "How many hours does it take to drive to the coast?"),
    ("en_029", "train", "Turn the television down, the baby is sleeping!"),
    ("en_030", "heldout", "Every autumn the leaves turn orange, gold, and red."),
]

# (prompt_id, Hanzi text). All "train": the held-out evaluation uses the parallel English voices.
MANDARIN_PROMPTS: list[tuple[str, str]] = [
    ("zh_001", "今天天气很好，我们去公园散步吧。"),
    ("zh_002", "你好，请问火车站怎么走？"),
    ("zh_003", "我想买一斤苹果和两个西瓜。"),
    ("zh_004", "他不是老师，他是一位医生。"),
    ("zh_005", "小朋友们在操场上踢足球。"),
    ("zh_006", "这本书非常有意思，你看过吗？"),
    ("zh_007", "妈妈每天早上六点起床做饭。"),
    ("zh_008", "我们一起学习中文，好不好？"),
    ("zh_009", "窗外下着大雨，风也很大。"),
    ("zh_010", "请把桌子上的茶杯递给我。"),
    ("zh_011", "北京的秋天特别漂亮。"),
    ("zh_012", "我的手机没电了，能借我用一下吗？"),
    ("zh_013", "他每个星期去两次游泳馆。"),
    ("zh_014", "河边的老渔翁正在钓鱼。"),
    ("zh_015", "爷爷喜欢在院子里种花。"),
    ("zh_016", "音乐会晚上八点准时开始。"),
    ("zh_017", "你想喝咖啡还是喝绿茶？"),
    ("zh_018", "我们学校有三千多个学生。"),
    ("zh_019", "冬天到了，雪花飘满了山坡。"),
    ("zh_020", "熊猫吃竹子的样子很可爱。"),
    ("zh_021", "他穿着一双黑色的运动鞋。"),
    ("zh_022", "医院就在银行的对面。"),
    ("zh_023", "这件衣服太贵了，便宜一点吧。"),
    ("zh_024", "姐姐正在厨房里炒青菜。"),
    ("zh_025", "明天的会议改到下午三点。"),
    ("zh_026", "春节的时候大家都回家团圆。"),
    ("zh_027", "我永远不会忘记那个夏天。"),
    ("zh_028", "展览馆里有很多古老的瓷器。"),
    ("zh_029", "我的女儿今年二十岁了。"),
    ("zh_030", "老人们常说，快乐最重要。"),
]

# Basenames (without .g722) in /usr/share/asterisk/sounds/en_US_f_Allison/, in corpus order.
ASTERISK_PROMPTS: list[str] = [
    "agent-newlocation",
    "vm-sorry",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "conf-getpin",
    "conf-invalidpin",
    "conf-noempty",
    "conf-onlyperson",
    "conf-roll-callcomplete",
    "confbridge-lock-no-join",
    "demo-echodone",
    "demo-nomatch",
    "dir-nomatch",
    "dir-nomore",
    "feature-not-avail-line",
    "followme/pls-hold-while-try",
    "pls-hold-while-try",
    "pm-invalid-option",
    "priv-recordintro",
    "privacy-incorrect",
    "privacy-prompt",
    "simul-call-limit-reached",
    "vm-tempgreetactive",
    "speed-dial-empty",
    "tt-monkeysintro",
    "tt-weasels",
    "vm-leavemsg",
    "vm-msgforwarded",
    "vm-nobodyavail",
    "vm-savefolder",
]
