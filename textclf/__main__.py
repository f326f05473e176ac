"""``python -m textclf``: the ``textclf`` command (also what ``torchrun -m textclf`` runs)."""

from textclf.cli.main import app

if __name__ == "__main__":
    app(prog_name="textclf")
