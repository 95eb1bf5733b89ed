"""Fixture group `tts_split`: the official text splitting of inference, run on hand-picked strings.

Runs, from the checkout given on the command line (pure Python, no model, no third-party import):

- `GPT_SoVITS/TTS_infer_pack/text_segmentation_method.py @48b1a01`, imported as it is:
  `split`, `cut0` … `cut5` and `split_big_text`;
- `GPT_SoVITS/inference_webui.py @48b1a01`: that file cannot be imported without gradio, CUDA
  checks and model files, so the definitions the inference path uses — the module-level
  `punctuation` and `splits` sets and the functions `split`, `cut1` … `cut5`,
  `merge_short_text_in_array`, `process_text` — are taken out of its syntax tree (`ast`) and
  executed alone, unchanged, with `re` and an identity `i18n`;
- the glue of `inference_webui.py · get_tts_wav` that turns the target text into the segments
  given to the GPT one by one. This glue is inline code of get_tts_wav, restated in
  `webui_segments` below step by step (strip "\\n", the chosen cut, "\\n\\n" → "\\n", split on
  "\\n", `process_text`, `merge_short_text_in_array(·, 5)`, skip blank segments, a final "。"
  — "." for English — when a segment does not end with one of `splits`); every function it
  calls is the official one.

Writes `tts_split/cases.json`: for each input string, `split`, each `cutN` (the web UI's and the
TTS_infer_pack's results are checked equal here, except `cut0`, which the web UI does not have:
its "不切" leaves the text as it is), `split_big_text` with max_len 20, and the segments of the
web UI pipeline for every cut and for languages "zh" and "en" (or the error `process_text`
raises). Plain JSON: strings and lists of strings.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import pathlib
import re

# Each string exercises something: sentence marks of both widths, "……" and "——", decimal points,
# no final mark, more than four sentences (cut1), more than 50 characters (cut2), items made only
# of punctuation, empty lines, short pieces merged (< 5 characters), digits, ellipsis, colons.
CASES = [
    "Hello there. How are you today? I am fine, thanks!",
    "It costs 3.14 dollars. Pi is 3.14159. Really.",
    "no final mark here, just a comma",
    "One. Two. Three. Four. Five. Six. Seven. Eight. Nine.",
    "Hi. Ok. Yes.",
    "Wait... what? No!",
    "First line.\n\nSecond line after an empty line.\nThird line",
    "你好，世界。今天天气很好！我们去公园吧？好的。",
    "他说……我不知道——也许吧。",
    "价格是3.5元。数量是12个，总共42元。",
    "第一句。第二句。第三句。第四句。第五句。第六句。",
    "这是一个很长的句子，用来测试凑五十字一切的方法是否正确，我们需要超过五十个字符才行，"
    "所以继续写下去，直到足够长为止。然后再来一句短的。",
    "Mixed 中文 and English, 混合文本。Done.",
    "A; b: c、d！e？f：g…h",
    "...,!?",
    "Time: 10:30. Score: 2.5, ok.",
]
CUTS = ["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]
WEBUI_NAMES = {"punctuation", "splits"}
WEBUI_FUNCTIONS = {"split", "cut1", "cut2", "cut3", "cut4", "cut5", "merge_short_text_in_array", "process_text"}


def _load_segmentation(official: pathlib.Path):
    path = official / "GPT_SoVITS" / "TTS_infer_pack" / "text_segmentation_method.py"
    spec = importlib.util.spec_from_file_location("official_text_segmentation_method", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_webui_definitions(official: pathlib.Path) -> dict:
    """The official definitions (unchanged source) of the web UI's splitting, executed alone."""
    path = official / "GPT_SoVITS" / "inference_webui.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    keep = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in WEBUI_FUNCTIONS:
            keep.append(node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in WEBUI_NAMES
                                                   for t in node.targets):
            keep.append(node)
    found = {n.name for n in keep if isinstance(n, ast.FunctionDef)}
    found |= {t.id for n in keep if isinstance(n, ast.Assign) for t in n.targets}
    missing = (WEBUI_FUNCTIONS | WEBUI_NAMES) - found
    if missing:
        raise SystemExit(f"{path}: definitions not found: {sorted(missing)}")
    namespace = {"re": re, "i18n": lambda s: s}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def webui_segments(webui: dict, text: str, cut: str, text_language: str) -> list[str]:
    """The segments `get_tts_wav` gives the GPT one by one (its inline glue, official helpers)."""
    text = text.strip("\n")
    if cut != "cut0":  # the web UI's "不切" calls no function
        text = webui[cut](text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    texts = text.split("\n")
    texts = webui["process_text"](texts)
    texts = webui["merge_short_text_in_array"](texts, 5)
    out = []
    for segment in texts:
        if len(segment.strip()) == 0:
            continue
        if segment[-1] not in webui["splits"]:
            segment += "。" if text_language != "en" else "."
        out.append(segment)
    return out


def make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]:
    seg = _load_segmentation(official)
    webui = _load_webui_definitions(official)
    assert webui["splits"] == seg.splits and webui["punctuation"] == seg.punctuation
    cases = []
    for text in CASES:
        case = {"text": text, "split": seg.split(text), "split_big_text_20": seg.split_big_text(text, 20)}
        for cut in CUTS:
            result = seg.get_method(cut)(text)
            if cut != "cut0":
                assert webui[cut](text) == result, (cut, text)
            case[cut] = result
        segments = {}
        for lang in ("zh", "en"):
            for cut in CUTS:
                try:
                    segments[f"{cut}/{lang}"] = webui_segments(webui, text, cut, lang)
                except ValueError as e:  # process_text: nothing left to say
                    segments[f"{cut}/{lang}"] = {"error": str(e)}
        case["webui_segments"] = segments
        cases.append(case)
    folder = out / "tts_split"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cases.json"
    path.write_text(json.dumps({"official_commit": "48b1a0169a28582a8984402f82cf438d3bfa6aca", "cases": cases},
                               ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return [path]
