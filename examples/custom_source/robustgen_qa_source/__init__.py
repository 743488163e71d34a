"""A third-party source format: quiz files of blocks separated by blank lines,

    image: photos/coffee.png
    question: What is in the cup?
    choices: tea | coffee | milk
    answer: 1

one row per block, image paths relative to the file. A block that cannot be read is that row's failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from robustgen.pipelines.formats import SourceFormat, SourceOptions
from robustgen.schemas import Failure, SourceRow
from robustgen.schemas.paths import regular_file_under


def read_qa(path: Path, options: SourceOptions) -> Iterator[SourceRow | Failure]:
    text = path.read_text(encoding="utf-8", errors="replace")
    for n, block in enumerate(b for b in text.split("\n\n") if b.strip()):
        row_id = f"{path.stem}-{n}"
        try:
            fields = {}
            for line in block.strip().splitlines():
                key, sep, value = line.partition(":")
                if not sep:
                    raise ValueError(f"'{line.strip()}' is not 'key: value'")
                fields[key.strip().lower()] = value.strip()
            image = regular_file_under(path.parent, fields["image"])  # never a path outside the file's folder
            choices = [c.strip() for c in fields["choices"].split("|")] if "choices" in fields else None
            yield SourceRow(
                id=row_id,
                source=str(path),
                image=str(image),
                question=fields["question"],
                answer=fields["answer"],
                choices=choices,
            )
        except KeyError as exc:
            yield Failure(id=row_id, source=str(path), stage="read", reason=f"block {n}: missing {exc.args[0]!r}")
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            yield Failure(id=row_id, source=str(path), stage="read", reason=f"block {n}: {reason}")


QA = SourceFormat(name="qa", read=read_qa, suffixes=(".qa",), help="quiz blocks: image, question, choices, answer")
