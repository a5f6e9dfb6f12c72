"""Re-record ``tests/golden_translations.json`` from the shipped artifact (run after exporting a new one).

.venv/bin/python -m tests.record_golden
"""

from __future__ import annotations

import json

from service.inference import load_translation_model
from tests.test_translation_shipped import GOLDEN, SENTENCES


def main() -> None:
    tm = load_translation_model(device="cpu")  # the golden test's reference is the CPU, whatever GPU is visible
    outputs = {f"{t}:{b}": [o["translation"] for o in tm.run(SENTENCES, [t] * len(SENTENCES), b)[0]] for t in ("de", "fr") for b in (1, 4)}
    GOLDEN.write_text(json.dumps({"sha256": tm.sha256, "outputs": outputs}, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(outputs, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
