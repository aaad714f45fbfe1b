"""Remake docs/report.png and docs/report-steps.png: the fixtures' HTML report in
headless Chromium, one run opened (its inputs, their origins, its derivations), and
the step-time small multiples. Run by hand from the project root:

    python docs/screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
RUN = "efbf473a0d65"  # pax/fp8/175b/128: every input set, every derivation shown


def main() -> None:
    browser = next(b for b in map(shutil.which, ("chromium", "google-chrome")) if b)
    with tempfile.TemporaryDirectory() as tmp:
        db, page = f"{tmp}/s.db", f"{tmp}/report.html"
        subprocess.run(  # from the root: the origins name fixtures/settings.toml
            ["llmbench", "ingest", "fixtures", "--db", db, "--settings", "fixtures/settings.toml"],
            check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        subprocess.run(
            ["llmbench", "report", "--db", db, "--html", page], check=True, capture_output=True
        )
        shot = f"{tmp}/full.png"
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1400,3400", f"--screenshot={shot}", f"file://{page}#run={RUN}"],
            check=True, capture_output=True,
        )  # fmt: skip
        full = Image.open(shot).convert("RGB")
    # the header and the table's first rows, then the opened run
    top, run = full.crop((0, 0, 1400, 318)), full.crop((0, 1420, 1400, 2330))
    out = Image.new("RGB", (1400, top.height + run.height + 10), "white")
    out.paste(top, (0, 0))
    ImageDraw.Draw(out).line([(20, top.height + 5), (1380, top.height + 5)], "#bbb", 2)
    out.paste(run, (0, top.height + 10))
    out.save(ROOT / "docs" / "report.png", optimize=True)
    full.crop((0, 2560, 1400, 3400)).save(ROOT / "docs" / "report-steps.png", optimize=True)


if __name__ == "__main__":
    main()
