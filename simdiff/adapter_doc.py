"""What an adapter takes and gives: ``simdiff adapters NAME``.

The configuration keys and their defaults come from the adapter's constructor signature; what
each key means from a numpy-style ``Parameters`` section of the constructor's or the class's
docstring (``key : text``, continuation lines indented); the inputs and outputs from the class
attributes, or from an instance built with the defaults when every key has one.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from .cli_options import UsageError, suggest
from .host import adapter_info

__all__ = ["describe", "describe_text", "parameter_docs"]


def parameter_docs(*docs: str | None) -> dict[str, str]:
    """{key: text} from the ``Parameters`` sections of numpy-style docstrings (first wins);
    ``a, b : text`` documents both keys."""
    out: dict[str, str] = {}
    for doc in docs:
        if not doc:
            continue
        lines = inspect.cleandoc(doc).splitlines()
        try:
            start = next(i for i, line in enumerate(lines)
                         if line.strip() == "Parameters" and i + 1 < len(lines)
                         and set(lines[i + 1].strip()) == {"-"}) + 2
        except StopIteration:
            continue
        keys: list[str] = []
        for line in lines[start:]:
            if not line.strip():
                keys = []
                continue
            if len(lines) > 0 and set(line.strip()) == {"-"}:  # the next section's underline
                break
            m = re.match(r"^(\w+(?:\s*,\s*\w+)*)\s*:\s*(.*)$", line)
            if m and not line.startswith((" ", "\t")):
                keys = [k.strip() for k in m.group(1).split(",")]
                for k in keys:
                    out.setdefault(k, m.group(2).strip())
            elif keys and line.startswith((" ", "\t")):
                for k in keys:
                    if out.get(k) is not None:
                        out[k] = (out[k] + " " + line.strip()).strip()
            else:
                keys = []
    return out


def _names(value: Any) -> list[str] | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        return [str(v) for v in value]
    except TypeError:
        return None


def describe(name: str) -> dict:
    """The adapter ``name``: description, plugin, inputs, outputs, configuration keys."""
    adapters = {a.name: a for a in adapter_info()}
    if name not in adapters:
        raise UsageError(f"no adapter named {name!r}{suggest(name, list(adapters))}; known adapters: "
                         f"{', '.join(adapters) or '(none)'}")
    a = adapters[name]
    cls = a.cls
    sig = inspect.signature(cls)
    docs = parameter_docs(cls.__init__.__doc__ if "__init__" in cls.__dict__ else None,
                          cls.__dict__.get("__doc__"))
    config = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        config.append({"key": p.name, "required": p.default is p.empty,
                       "default": None if p.default is p.empty else p.default,
                       "doc": docs.get(p.name, "")})
    inputs, outputs = _names(getattr(cls, "inputs", None)), _names(getattr(cls, "outputs", None))
    if outputs is None:
        outputs = _names(getattr(cls, "all_outputs", None))
    source = "class"
    if all(not c["required"] for c in config) and (inputs is None or outputs is None):
        try:
            sim = cls()
            inputs = inputs or _names(sim.inputs)
            outputs = outputs or _names(sim.outputs)
            source = "defaults"
        except Exception:  # noqa: BLE001 - an adapter that needs more than its defaults
            pass
    keys = {c["key"] for c in config}
    return {"name": a.name, "description": a.description, "plugin": a.plugin, "version": a.version,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "doc": inspect.cleandoc(cls.__dict__.get("__doc__") or ""),
            "inputs": inputs, "inputs_from": None if inputs else ("inputs" if "inputs" in keys else None),
            "outputs": outputs, "outputs_from": None if outputs else ("outputs" if "outputs" in keys else None),
            "names_from": source, "config": config}


def describe_text(info: dict) -> str:
    lines = [f"{info['name']}: {info['description']}",
             f"plugin {info['plugin']} {info['version']}".rstrip() + f" ({info['class']})", ""]
    for what in ("inputs", "outputs"):
        if info[what]:
            lines.append(f"{what}: {', '.join(info[what])}")
        elif info[f"{what}_from"]:
            lines.append(f"{what}: set by the configuration key {info[f'{what}_from']!r}")
        else:
            lines.append(f"{what}: not named in advance (x0, x1, ... / f0, f1, ...)")
    lines += ["", "configuration (--set KEY=VALUE; in a run file, the [config] table):"]
    width = max([len(c["key"]) for c in info["config"]] + [3])
    dwidth = max([len(_default(c)) for c in info["config"]] + [7])
    for c in info["config"]:
        lines.append(f"  {c['key']:<{width}}  {_default(c):<{dwidth}}  {c['doc']}".rstrip())
    if not info["config"]:
        lines.append("  (none)")
    return "\n".join(lines)


def _default(c: dict) -> str:
    return "(required)" if c["required"] else f"= {c['default']!r}"
