PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The whole offline default pipeline: describe, train, eval, export, predict.
demo: $(STAMP)
	$(BIN)/textclf describe --dataset digits --prompt-type 3 --describer builtin
	$(BIN)/textclf train --run-dir runs/demo
	$(BIN)/textclf eval runs/demo
	$(BIN)/textclf export onnx runs/demo
	$(BIN)/textclf predict runs/demo/model.onnx demo_images/*.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f; done

clean:
	rm -rf runs demo_images descriptions ablations build dist *.egg-info
