"""`python -m finetune.sweep.worker SETTINGS_JSON INDEX`: one of `finetune sweep --workers N`'s processes."""

from __future__ import annotations

import sys

from finetune.sweep.study import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
