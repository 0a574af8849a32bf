# Shortcuts; the scripts are the reference (a fresh Debian may not have make).
.PHONY: bootstrap test demo lint lab-up lab-down
bootstrap: ; ./scripts/bootstrap.sh
test: ; ./scripts/test.sh
demo: ; ./scripts/demo.sh
lint: ; .venv/bin/ruff check daemon tests bench && .venv/bin/ruff format --check daemon tests bench && .venv/bin/mypy && .venv/bin/lint-imports
lab-up: ; .venv/bin/dialler lab up
lab-down: ; .venv/bin/dialler lab down
