"""MMLongBench (``ZhaoweiWang/MMLongBench``, MIT): the reference's ``eval/mmlongbench.py``.

The copy is the unpacked tree: ``mmlb_data/`` (``0_mmlb_data.tar.gz``) and ``mmlb_image/`` (the image
tarballs). ``--tasks`` names annotation files relative to ``mmlb_data/`` (default: every ``*_K8*`` file, the
8K setting of the reference's ``configs/mmlongbench_K8.yaml``); the task kind is read from the folder and the
file name, as the reference's dispatcher does. Every query is graded by its task's metric (sub_em, acc,
mc_acc, soft_acc, cls_acc, doc_qa, ROUGE-Lsum); the summary reports each metric's mean.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from focus_integrations.errors import DatasetLayoutError
from focus_integrations.harness import parsing
from focus_integrations.harness.benchmarks import mmlb_metrics as m
from focus_integrations.harness.benchmarks.common import (
    REFERENCE_GENERATION,
    REFERENCE_MODE_GENERATION_NOISED,
    REFERENCE_NOISED_QUIRKS,
    STRICT_GENERATION,
    interleave,
)
from focus_integrations.harness.spec import Benchmark, Layout, Protocol, Query, RowContext

_FORMAT = "Write your answer in the following format:\nAnswer: [answer]\n\n{context}\n\nQuestion: {question}"
TEMPLATES = {
    "vrag": "Use the given documents to write a concise and short answer to the question about the entity shown "
    "in the image. " + _FORMAT,
    "vh": "You are given a set of images. Please answer the question in Yes or No based on the given images. "
    + _FORMAT,
    "niah": "You are given interleaved text and images. Please answer the question based on the given text and "
    "images. " + _FORMAT,
    "niah_mc": "You are given interleaved text and images. Please answer the question with the option's letter "
    "(A, B, etc.) based on the given text and images. " + _FORMAT,
    "icl": "You need to recognize entities in images. Use the provided mapping from the image to label to assign "
    'a label to the test image. Only output "label: {{label}}" and nothing else.\n\nTraining examples:\n'
    "{context}\n\nNow classify this image: {question}",
    "summ_gov": "You are given a government report from U.S. Government Accountability Office (GAO), and you are "
    "tasked to summarize the report. Write a concise summary (around 550 words) organized in multiple paragraphs. "
    "Where applicable, the summary should contain a short description of why GAO did this study, what GAO found, "
    "and what GAO recommends.\n\nGovernment Report:\n{context}\n\nNow please summarize the report.",
    "summ_lex": "You are given the legal documents in a civil rights lawsuit, and you are tasked to summarize the "
    "case. Write a concise summary of one paragraph (200 to 250 words). The summary should contain a short "
    "description of the background, the parties involved, and the outcomes of the case.\n\nLegal documents:\n"
    "{context}\n\nNow please summarize the case.",
    "docqa": "You are given a document with text and images, and a question. Answer the question as concisely as "
    "you can, using a single phrase or sentence if possible. If the question cannot be answered based on the "
    "information in the article, write 'Not answerable.' " + _FORMAT,
}
PREFIX = {"icl": "label:", "summ_gov": "Summary:", "summ_lex": "Summary:"}
DEFAULT_ANSWERS = (0, 1, 1, 0)  # Visual Haystack's fallback cycle when no yes/no is read (reference only)


def _read(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_kind(file: str) -> str:
    """The reference dispatcher, from the annotation file's folder and name."""
    name = file.lower()
    if "infoseek" in name or "viquae" in name:
        return "vrag"
    if "vh_single" in name or "vh_multi" in name:
        return "vh"
    if "counting-image" in name:
        return "niah_count"
    if any(k in name for k in ("retrieval-image", "reasoning-image", "text-haystack")):
        return "niah_mc"
    if "niah" in name or "mm-niah" in name:
        return "niah_count_text" if "counting" in name else "niah"
    if any(k in name for k in ("cars196", "food101", "inat2021", "sun397")):
        return "icl"
    if "gov" in name:
        return "summ_gov"
    if "lexsum" in name:
        return "summ_lex"
    if any(k in name for k in ("longdocurl", "mmlongdoc", "slidevqa")):
        return "docqa"
    raise DatasetLayoutError(
        f"MMLongBench: cannot tell the task of {file} (the reference's dispatcher neither)"
    )


def _row(task: str, kind: str, i: int, raw: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": f"{task}:{raw.get('id', i)}", "task": task, "kind": kind, "position": i} | fields


def _rows_of(task: str, data: Any, seed: int) -> list[dict[str, Any]]:
    kind = task_kind(task)
    out = []
    if kind == "icl":
        rng = random.Random(seed)
        tests = [(d, ex) for d, dd in data.items() for ex in dd["test_example"]]
        for i, (domain, ex) in enumerate(tests):
            shots = [s for rnd in rng.choice(data[domain]["exemplar_list"]) for s in rnd]
            context = "\n\n".join(f"<image>\nlabel: {s['id']}" for s in shots)
            images = [s["image"] for s in shots] + [ex["image"]]
            out.append(
                _row(
                    task, kind, i, ex, question="<image>", context=context, images=images, answer=ex["answer"]
                )
            )
        return out
    for i, r in enumerate(data):
        if kind == "vrag":
            if '"' in r["image"]:
                continue  # the reference drops these rows
            context = "\n\n".join(f"Document (Title: {c['title']}): {c['text']}" for c in r["ctxs"])
            fields = {"question": "<image>" + r["question"], "context": context, "images": [r["image"]]}
        elif kind == "vh":
            fields = {
                "question": r["question"],
                "context": "\n".join(["<image>"] * len(r["ctxs"])),
                "images": list(r["ctxs"]),
            }
        elif kind == "niah_mc":
            n = len(r["choices_image"])
            question = r["question"] + "".join(f"\n{chr(65 + k)}. <image>" for k in range(n))
            fields = {"question": question, "images": list(r["image_list"]) + list(r["choices_image"])}
            fields["context"] = "\n\n".join(p["text"] for p in r["ctxs"])
        elif kind in ("niah", "niah_count_text", "niah_count"):
            images = list(r.get("image_list", [])) + list(
                r.get("needle_image_list", []) if kind == "niah_count" else []
            )
            fields = {
                "question": r["question"],
                "context": "\n\n".join(p["text"] for p in r["ctxs"]),
                "images": images,
            }
        elif kind in ("summ_gov", "summ_lex"):
            pages = list(r["image_list"])
            context = "\n\n".join(
                f"Document {p.split('/')[-2]:.15} (page {_page_id(p)}): <image>" for p in pages
            )
            answer = r["summary"]
            if kind == "summ_gov":
                answer = "\n\n".join(a["section_title"] + ":\n" + "\n".join(a["paragraphs"]) for a in answer)
            out.append(_row(task, kind, i, r, question="", context=context, images=pages, answer=answer))
            continue
        else:  # docqa
            pages = r["page_list"]
            fields = {
                "question": f"Based on Document {r['doc_name']:.15}, answer the following question. "
                + r["question"],
                "context": "\n\n".join(f"Document {p.split('/')[-2]:.15}: <image>" for p in pages),
                "images": list(pages),
                "answer_format": r.get("answer_format", "String"),
            }
        out.append(_row(task, kind, i, r, answer=r["answer"], **fields))
    return out


def _page_id(path: str) -> str:
    return path.split("page")[1].split(".")[0] if "page" in path else Path(path).stem


def load_rows(root: Path, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    data_root = root / "mmlb_data"
    tasks = list(options.get("tasks") or [])
    if not tasks:
        tasks = sorted(
            str(p.relative_to(data_root)) for p in data_root.rglob("*_K8*") if p.suffix in (".json", ".jsonl")
        )
    if not tasks:
        raise DatasetLayoutError(
            f"{data_root} holds no *_K8* task files; pass --tasks FILE relative to mmlb_data/"
        )
    rows = []
    for task in tasks:
        path = data_root / task
        if not path.is_file():
            raise DatasetLayoutError(f"{path} does not exist (--tasks names files relative to {data_root})")
        rows.extend(_rows_of(task, _read(path), int(options.get("seed", 42))))
    return rows


def _image(root: Path, relative: str, protocol: Protocol) -> Image.Image:
    path = root / "mmlb_image" / relative
    try:
        return Image.open(path).convert("RGB")
    except OSError:
        if protocol.name == "reference":  # the reference silently uses a gray placeholder
            return Image.new("RGB", (224, 224), (128, 128, 128))
        raise DatasetLayoutError(f"MMLongBench image {path} is missing or unreadable") from None


def _grader(row: Mapping[str, Any], protocol: Protocol) -> tuple[str, Any]:
    kind, prefix = row["kind"], PREFIX.get(row["kind"], "Answer:")

    def best(score: Any) -> Any:
        return lambda parsed, raw: float(max(score(raw), score(m.parse_output(raw, prefix) or raw)))

    if kind == "vrag" or kind == "niah":
        return "sub_em", best(lambda t: m.sub_em(t, row["answer"]))
    if kind == "vh":
        default = DEFAULT_ANSWERS[row["position"] % 4] if protocol.name == "reference" else -2
        gold = m.binary_label(str(row["answer"]))
        return "acc", lambda parsed, raw: float(
            (m.binary_label(raw) if m.binary_label(raw) != -1 else default) == gold
        )
    if kind == "niah_mc":
        return "mc_acc", best(lambda t: m.choice_index(t) == row["answer"])
    if kind in ("niah_count", "niah_count_text"):
        return "soft_acc", best(lambda t: sum(m.count_list(t)) == sum(row["answer"]))
    if kind == "icl":
        return "cls_acc", best(lambda t: m.class_number(t) == row["answer"])
    if kind in ("summ_gov", "summ_lex"):
        return "rouge_lsum", lambda parsed, raw: m.rouge_l(m.parse_output(raw, prefix) or raw, row["answer"])
    return "doc_qa", lambda parsed, raw: m.doc_qa(
        row["answer"], m.parse_output(raw, prefix) or raw, row["answer_format"]
    )


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    images = [_image(ctx.root, p, protocol) for p in row["images"]]
    prompt = protocol.templates[row["kind"] if row["kind"] in protocol.templates else "niah"].format(
        context=row["context"], question=row["question"]
    )
    metric, grade = _grader(row, protocol)
    if protocol.name == "reference":
        # The reference keeps literal "<image>" markers with all images first; LLaVA-style processors read
        # that string as an image token, so it is written "[image]" here (images still first).
        query = Query(
            ctx.example_id, "q", images, prompt.replace("<image>", "[image]"), json.dumps(row["answer"])
        )
    else:
        query = Query(
            ctx.example_id, "q", images, prompt, json.dumps(row["answer"]), content=interleave(prompt, images)
        )
    query.grade, query.metric = grade, metric
    query.breakdown = {"task": row["task"], "n_images": str(len(images))}
    query.parser = _AnswerText(PREFIX.get(row["kind"], "Answer:"))
    return [query]


class _AnswerText:
    """The text after the task's answer prefix (what the graded metrics read, besides the raw answer)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def parse(self, text: str) -> str | None:
        return m.parse_output(parsing.strip_reasoning(text), self.prefix) or text


BENCHMARK = Benchmark(
    name="mmlongbench",
    hub_id="ZhaoweiWang/MMLongBench",
    revision="main",
    licence="MIT",
    gated=False,
    layout=Layout(
        "json-tree",
        ("mmlb_data",),
        "the unpacked tarballs: mmlb_data/ (0_mmlb_data.tar.gz: vrag/, NIAH/, ICL/, summ/, documentQA/) and "
        "mmlb_image/ (vrag.tar.gz, vh.tar.gz, mm-niah.tar.gz, icl.tar.gz, summ.tar.gz, docqa.tar.gz)",
    ),
    protocols={
        "reference": Protocol(
            "reference",
            TEMPLATES,
            _AnswerText("Answer:"),
            generation=REFERENCE_GENERATION,
            mode_generation=REFERENCE_MODE_GENERATION_NOISED,
            quirks=(
                "a missing image becomes a gray 224x224 placeholder (strict: an error)",
                "Visual Haystack: no yes/no read -> the default-answer cycle 0,1,1,0 (strict: wrong)",
                "literal <image> markers are written [image] (the reference keeps them; LLaVA processors would "
                "read them as image tokens); summaries are scored by ROUGE-Lsum (the paper's MMLongBench uses a "
                "GPT-4o judge)",
                *REFERENCE_NOISED_QUIRKS,
            ),
        ),
        "strict": Protocol(
            "strict",
            TEMPLATES,
            _AnswerText("Answer:"),
            generation=STRICT_GENERATION | {"max_new_tokens": 128},
            image_placement="interleaved",
        ),
    },
    queries=queries,
    primary="accuracy",
    breakdowns=("task", "n_images"),
    row_id="id",
    category_column="task",
    load_rows=load_rows,
)
