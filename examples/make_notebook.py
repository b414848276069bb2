"""Writes examples/quickstart.ipynb from examples/quickstart_tour.py (cells split at
``# %%``; ``# %% [markdown]`` cells lose their ``# ``), without outputs.

Usage:
  python examples/make_notebook.py
"""

import os

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "quickstart_tour.py")
NOTEBOOK = os.path.join(HERE, "quickstart.ipynb")


def cells_of(text: str):
    """``[(kind, source)]`` of a script with ``# %%`` cell markers."""
    cells, kind, lines = [], None, []
    for line in text.splitlines() + ["# %%"]:
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, "\n".join(lines).strip("\n")))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind is not None:
            lines.append(line)
    return cells


def notebook_of(text: str):
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    book.cells = [nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                  else nbformat.v4.new_code_cell(source) for kind, source in cells_of(text)]
    for number, cell in enumerate(book.cells):
        cell.id = f"cell-{number}"                     # stable ids: the file is reproducible
    return book


def main():
    with open(SCRIPT, encoding="utf-8") as handle:
        book = notebook_of(handle.read())
    nbformat.write(book, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
