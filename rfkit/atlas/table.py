"""The atlas as a table: written by a build, read by :func:`load`, filtered by :func:`query`.

A query is a boolean expression over the table's columns, e.g. ``rf_final >= 800 and stride_final == 32``.
It is parsed with :mod:`ast` and evaluated here, node by node, on the columns: only column names, literals
(numbers, strings, booleans, lists of them), comparisons (``== != < <= > >= in not in``), arithmetic
(``+ - * / // %``, unary ``-``) and ``and``/``or``/``not`` are taken. Nothing is handed to ``eval`` or to
``pandas.eval`` (whose ``@`` names, attribute access and calls reach Python objects), so a query cannot run
code: a call, an attribute, a subscript or a name that is not a column is refused in one line.
"""

from __future__ import annotations

import ast
import csv
import io
import math
import operator
from pathlib import Path

import pandas as pd

from rfkit.errors import AtlasError
from rfkit.io import atomic_paths, atomic_write_text

TABLE = "atlas.csv"
PARQUET = "atlas.parquet"
FAILURES = "failures.csv"
FAILURE_COLUMNS = ["source", "model", "family", "input_size", "status", "reason"]
#: ``status`` of a row of ``failures.csv``: rfkit could not trace or measure the model there (a failure of rfkit,
#: or of the machine: ``--retry-failed`` runs it again) ...
FAILED = "failed"
#: ... the model itself cannot run at that input size (a ViT whose patch does not divide it, a fixed attention
#: bias, an input smaller than its downsampling): the reason is the model's own error, not rfkit's ...
NOT_DEFINED = "not-defined"
#: ... or no trained weights could be loaded for its trained ERF (offline and not cached, none published, a given
#: file that does not fit): its analytic rows are whole.
NO_WEIGHTS = "no-weights"
#: The statuses, in the order the site and the coverage report list them.
STATUSES = (FAILED, NOT_DEFINED, NO_WEIGHTS)
#: The ``input_from`` of the rows whose ERF was measured, and what the site calls them.
ERF_KINDS = {"erf_init": "at initialisation", "erf_trained": "trained"}
#: Where the key columns go: first, in this order.
KEY_COLUMNS = ["source", "model", "family", "input_from", "input_h", "input_w", "layer", "stage", "is_final"]
#: Text columns (an empty cell is "", a model named "NA" stays "NA").
TEXT_COLUMNS = [
    "source", "model", "family", "input_from", "layer", "status", "unproductive_layers", "method", "erf_weights",
    "erf_warnings",
]  # fmt: skip
#: Boolean columns (read back from CSV as bools).
BOOL_COLUMNS = ["is_final", "is_global", "misaligned", "approximate", "unknown", "periodic", "outgrows", "global_final"]


def frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a DataFrame, key columns first, sorted by source, model, input size and stage."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=KEY_COLUMNS)
    df = df[KEY_COLUMNS + [c for c in df.columns if c not in KEY_COLUMNS]]
    order = df["input_from"] != "default"
    keys = ["source", "model", "_o", "input_h", "input_w", "input_from", "stage"]
    return df.assign(_o=order).sort_values(keys).drop(columns="_o").reset_index(drop=True)


def has_pyarrow() -> bool:
    """Whether pyarrow, which reads and writes ``atlas.parquet``, is installed (``pip install 'rfkit[atlas]'``)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_tables(out: Path, results) -> Path:
    """Write ``atlas.csv`` (and ``atlas.parquet`` where pyarrow is installed) and ``failures.csv`` from the
    :class:`~rfkit.atlas.build.ModelResult` of every model; returns the CSV's path.

    The CSV and the Parquet file are written to temporary files first and renamed into place together, so a
    reader finds both tables of the same build or the earlier pair, never half a file. Without pyarrow a
    Parquet file left by an earlier build is removed: it would be an older table than the CSV.
    """
    df = frame([row for r in results for row in r.rows])
    if has_pyarrow():
        with atomic_paths([out / TABLE, out / PARQUET]) as (csv_tmp, parquet_tmp):
            csv_tmp.write_text(df.to_csv(index=False), encoding="utf-8")
            df.to_parquet(parquet_tmp, index=False)
    else:
        atomic_write_text(out / TABLE, df.to_csv(index=False))
        (out / PARQUET).unlink(missing_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FAILURE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({"status": FAILED, **f} for r in results for f in r.failures)  # older files had no status
    atomic_write_text(out / FAILURES, buf.getvalue())
    return out / TABLE


def load_failures(path) -> pd.DataFrame:
    """``failures.csv`` of the atlas folder ``path``: a row per model and size missing from the table, with its
    ``status`` (:data:`STATUSES`) and reason; empty when there is none (or no such file: a table given alone).

    >>> load_failures("/no/such/atlas").columns.tolist()
    ['source', 'model', 'family', 'input_size', 'status', 'reason']
    """
    path = Path(path)
    file = path / FAILURES if path.is_dir() else path.parent / FAILURES
    if not file.is_file():
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    try:
        df = pd.read_csv(file, keep_default_na=False, dtype=str)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise AtlasError(f"{file} cannot be read as the atlas's failures: {str(e).splitlines()[0]}") from None
    if "status" not in df.columns:  # written before statuses: every row was a failure
        df["status"] = FAILED
    return df.reindex(columns=FAILURE_COLUMNS, fill_value="")


def table_file(path) -> Path:
    """The table :func:`load` reads for ``path``: the file itself, or in an atlas folder ``atlas.parquet``
    where it exists and pyarrow is installed, else ``atlas.csv`` (the same table, written by the same build).

    Raises
    ------
    AtlasError
        No table there, or only a Parquet one and no pyarrow to read it.
    """
    path = Path(path)
    if path.is_dir():
        parquet, table = path / PARQUET, path / TABLE
        if parquet.is_file() and (has_pyarrow() or not table.is_file()):
            table = parquet
    else:
        table = path
    if not table.is_file():
        raise AtlasError(f"no atlas at {path}: build one with `rfkit atlas build --out {path}`")
    if table.suffix == ".parquet" and not has_pyarrow():
        raise AtlasError(f"{table} is a Parquet file and pyarrow is not installed: pip install 'rfkit[atlas]'")
    return table


def _read(table: Path) -> pd.DataFrame:
    if table.suffix == ".parquet":
        import pyarrow

        try:
            return pd.read_parquet(table)
        except (pyarrow.ArrowException, OSError, ValueError) as e:
            raise AtlasError(f"{table} cannot be read as an atlas table: {str(e).splitlines()[0]}") from None
    try:
        return pd.read_csv(
            table, keep_default_na=False, na_values=["", "nan", "NaN"], dtype=dict.fromkeys(TEXT_COLUMNS, str)
        )
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise AtlasError(f"{table} cannot be read as an atlas table: {str(e).splitlines()[0]}") from None


def load(path="rfkit-atlas") -> pd.DataFrame:
    """The atlas table: a row per model, input size and layer (stage outputs, the final feature map last).

    Parameters
    ----------
    path : path
        An atlas folder (``rfkit atlas build --out``; its ``atlas.parquet`` is read where pyarrow is
        installed, else its ``atlas.csv``), or one of those two files (the CSV may be compressed:
        ``atlas.csv.gz``, as the docs publish it).

    Returns
    -------
    pandas.DataFrame
        RF columns per axis (``rf_h``, ``rf_w``, ``rf_min_*``, ``rf_local_*``, ``stride_*``, ``center_*``,
        ``padding_*``, ``centre_offset_*``), ``rf`` (the smaller axis; ``inf`` when global) and ``stride`` (the
        larger), flags, the layer's productivity ``status``, and the model's columns (``rf_final``,
        ``stride_final``, ``input_min_*``, ``input_max_*``, ``unproductive``, ...). The same frame from either
        file: text columns hold ``""`` where empty, flags are booleans.

    Raises
    ------
    AtlasError
        No atlas there, or a table that is not one.

    Examples
    --------
    >>> import rfkit, tempfile
    >>> folder = rfkit.atlas.build_atlas(tempfile.mkdtemp(), models="test_resnet", sizes=[], recycle=None).parent
    >>> df = rfkit.atlas.load(folder)
    >>> df[df["is_final"]][["model", "layer", "stride_h"]].values.tolist()
    [['test_resnet', 'layer4', 32]]
    """
    table = table_file(path)
    df = _read(table)
    missing = [c for c in KEY_COLUMNS + ["rf_h", "rf_w", "rf_final"] if c not in df.columns]
    if missing:
        raise AtlasError(
            f"{table} is not an atlas table (no column {', '.join(missing)}); rebuild it with rfkit atlas build"
        )
    text = [c for c in TEXT_COLUMNS if c in df.columns]
    df[text] = df[text].fillna("").astype(str)  # an empty text cell (no unproductive layer, no warning) stays text
    for c in BOOL_COLUMNS:
        if c in df.columns and df[c].dtype == object:
            df[c] = df[c].map({"True": True, "False": False, True: True, False: False})
    return df


# --- queries ----------------------------------------------------------------------------------------------
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_LITERALS = (int, float, str, bool)
_LIMIT = 2000  # characters of a query


def _refuse(what: str, columns) -> AtlasError:
    return AtlasError(
        f"query: {what} is not allowed; use column names ({', '.join(list(columns)[:8])}, ...), numbers, quoted "
        "strings, comparisons, + - * /, and/or/not"
    )


class _Evaluator:
    """Evaluates a parsed query on a DataFrame's columns, refusing any node outside the whitelist."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df

    def __call__(self, node: ast.AST):
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _refuse(_describe(node), self.df.columns)
        return method(node)

    def _Expression(self, node):
        return self(node.body)

    def _Name(self, node):
        if node.id in self.df.columns:
            return self.df[node.id]
        if node.id in ("True", "False", "inf", "nan"):
            return {"True": True, "False": False, "inf": math.inf, "nan": math.nan}[node.id]
        raise AtlasError(f"query: no column named {node.id!r}; the columns are {', '.join(self.df.columns)}")

    def _Constant(self, node):
        if not isinstance(node.value, _LITERALS):
            raise _refuse(f"the literal {node.value!r}", self.df.columns)
        return node.value

    def _List(self, node):
        values = [self(e) for e in node.elts]
        if any(isinstance(v, pd.Series) for v in values):
            raise _refuse("a list holding columns", self.df.columns)
        return values

    _Tuple = _List

    def _BoolOp(self, node):
        values = [_boolean(self(v)) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out

    def _UnaryOp(self, node):
        value = self(node.operand)
        if isinstance(node.op, ast.Not):
            return ~_boolean(value) if isinstance(value, pd.Series) else not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise _refuse(_describe(node.op), self.df.columns)

    def _BinOp(self, node):
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise _refuse(_describe(node.op), self.df.columns)
        return op(self(node.left), self(node.right))

    def _Compare(self, node):
        out, left = None, self(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self(right_node)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, list) or not isinstance(left, pd.Series):
                    raise AtlasError(
                        "query: `in` takes a column on the left and a list on the right: family in ['resnet']"
                    )
                value = left.isin(right)
                value = ~value if isinstance(op, ast.NotIn) else value
            elif type(op) in _COMPARE:
                value = _COMPARE[type(op)](left, right)
            else:
                raise _refuse(_describe(op), self.df.columns)
            out = value if out is None else out & value
            left = right
        return out


def _describe(node) -> str:
    names = {
        "Call": "a function call",
        "Attribute": "an attribute",
        "Subscript": "a subscript",
        "Lambda": "a lambda",
        "NamedExpr": "an assignment",
    }
    return names.get(type(node).__name__, f"`{type(node).__name__}`")


def _boolean(value):
    if isinstance(value, pd.Series):
        if value.dtype != bool:
            raise AtlasError("query: and/or/not take comparisons or boolean columns (is_global, is_final, ...)")
        return value
    if isinstance(value, bool):
        return value
    raise AtlasError("query: and/or/not take comparisons or boolean columns (is_global, is_final, ...)")


def query(df: pd.DataFrame, expression: str) -> pd.DataFrame:
    """The rows of ``df`` for which ``expression`` holds.

    Parameters
    ----------
    df : pandas.DataFrame
        An atlas table (:func:`load`).
    expression : str
        ``rf_final >= 800 and stride_final == 32``, ``family in ['resnet', 'convnext']``, ``rf_h / input_h > 2``...

    Raises
    ------
    AtlasError
        The expression does not parse, names something that is not a column, or uses anything but the
        operators listed in this module's description.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"model": ["a", "b", "c"], "rf": [100, 900, 1200], "stride": [32, 32, 16]})
    >>> query(df, "rf >= 800 and stride == 32")["model"].tolist()
    ['b']
    >>> query(df, "__import__('os').system('echo hi')")
    Traceback (most recent call last):
    ...
    rfkit.errors.AtlasError: query: a function call is not allowed; use column names (model, rf, stride, ...), \
numbers, quoted strings, comparisons, + - * /, and/or/not
    """
    if not isinstance(expression, str) or not expression.strip():
        raise AtlasError(
            "query: give an expression over the atlas columns, e.g. 'rf_final >= 800 and stride_final == 32'"
        )
    if len(expression) > _LIMIT:
        raise AtlasError(f"query: {len(expression)} characters; at most {_LIMIT}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise AtlasError(f"query: {e.msg} at column {e.offset} of {expression.strip()!r}") from None
    except (RecursionError, MemoryError):
        raise AtlasError("query: nested too deeply; write it flatter") from None
    try:
        mask = _Evaluator(df)(tree)
    except RecursionError:
        raise AtlasError("query: nested too deeply; write it flatter") from None
    if not isinstance(mask, pd.Series) or mask.dtype != bool:
        raise AtlasError("query: the expression must be a condition on the rows, e.g. 'rf_final >= 800'")
    return df[mask]


LAYER_CHOICES = ("final", "all")


def select_rows(df: pd.DataFrame, input_size=None, layers: str = "final") -> pd.DataFrame:
    """The rows at ``input_size`` ((h, w); None: each model's default size): ``layers="final"``, those of the
    final feature map (one row per model), ``"all"``, every stage's too.

    >>> df = pd.DataFrame({"source": "timm", "model": "m", "layer": "l", "input_from": ["default", "requested"],
    ...                    "input_h": [224, 640], "input_w": [224, 640], "is_final": [True, True]})
    >>> select_rows(df, (640, 640))["input_h"].tolist()
    [640]
    """
    if layers not in LAYER_CHOICES:
        raise AtlasError(f"--layers {layers!r}: choose one of {', '.join(LAYER_CHOICES)}")
    if input_size is None:
        rows = df[df["input_from"] == "default"]
    else:
        h, w = input_size
        at = df[(df["input_h"] == h) & (df["input_w"] == w)]
        measured = at.sort_values("input_from", key=lambda c: c.isin(list(ERF_KINDS)))
        rows = measured.drop_duplicates(["source", "model", "layer"])  # the analytic row where there is one
        if rows.empty and not df.empty:
            sizes = sorted({f"{a}x{b}" for a, b in zip(df["input_h"], df["input_w"])})
            raise AtlasError(
                f"the atlas has no rows at {h}x{w}; its sizes are {', '.join(sizes[:10])}: "
                f"rebuild it with --input-size {h} {w}"
            )
    return rows[rows["is_final"]] if layers == "final" else rows


def pick_columns(df: pd.DataFrame, columns) -> pd.DataFrame:
    """``df`` with only ``columns`` (names of its columns), in that order."""
    columns = [c.strip() for c in columns if c.strip()]
    missing = [c for c in columns if c not in df.columns]
    if missing or not columns:
        raise AtlasError(
            f"no column named {', '.join(map(repr, missing)) or 'at all'}; the columns are {', '.join(df.columns)}"
        )
    return df[columns]
