"""Framework filters (dicts) to ragcore filter expressions (the library's grammar)."""
from __future__ import annotations

import json
from typing import Any, Dict, Optional, Union

_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if v is None:
        return "null"
    return json.dumps(str(v))


def _key(k: str) -> str:
    if not k.replace("_", "a").replace(".", "a").isalnum():
        raise ValueError(f"filter key {k!r}: only letters, digits, '_' and '.' are allowed")
    return k


def dict_to_expr(f: Union[None, str, Dict[str, Any]]) -> Optional[str]:
    """``{"lang": "en", "year": {"$gte": 2020}, "tag": {"$in": ["a", "b"]}}`` ->
    ``lang = "en" AND year >= 2020 AND tag IN ("a", "b")``; ``$and``/``$or`` take lists of
    such dicts. A string is taken as an expression already."""
    if f is None or isinstance(f, str):
        return f or None
    parts = []
    for k, v in f.items():
        if k in ("$and", "$or"):
            sub = [f"({dict_to_expr(x)})" for x in v]
            parts.append((" AND " if k == "$and" else " OR ").join(sub))
        elif isinstance(v, dict):
            for op, val in v.items():
                if op in _OPS:
                    parts.append(f"{_key(k)} {_OPS[op]} {_literal(val)}")
                elif op in ("$in", "$nin"):
                    inner = ", ".join(_literal(x) for x in val)
                    expr = f"{_key(k)} IN ({inner})"
                    parts.append(expr if op == "$in" else f"NOT {expr}")
                elif op == "$exists":
                    parts.append(f"EXISTS {_key(k)}" if val else f"NOT EXISTS {_key(k)}")
                else:
                    raise ValueError(f"filter operator {op!r} is not supported")
        elif isinstance(v, (list, tuple)):
            parts.append(f"{_key(k)} IN ({', '.join(_literal(x) for x in v)})")
        else:
            parts.append(f"{_key(k)} = {_literal(v)}")
    return " AND ".join(parts) or None
