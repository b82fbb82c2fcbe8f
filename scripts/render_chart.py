#!/usr/bin/env python3
"""Renders deploy/helm/otel-ebpf-receiver offline, for CI validation only.

Helm cannot be installed on this project's machines (it is not packaged in Debian 12 nor on
PyPI, and Go modules cannot be fetched), so CI renders the chart with this small renderer of
the Go-template subset the chart uses, then validates the result with kubernetes-validate.
Supported: {{ .Values.x.y }}, .Release.Name/.Release.Namespace, .Chart.Name/.Chart.AppVersion,
{{- / -}} whitespace trimming, if/else/end (with eq, ne, not), define/include, and the
functions toYaml, nindent, indent, quote. Anything else is an error (so the chart cannot drift
into syntax this renderer would get wrong): keep the chart within this subset, or render it
with `helm template` where helm is available (the output must be the same).

usage: render_chart.py CHART_DIR [-f values.yaml] [--name NAME] [--namespace NS]
"""
import argparse
import pathlib
import re
import sys

import yaml

TOKEN = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def tokenize(text):
    out, pos = [], 0
    for m in TOKEN.finditer(text):
        lit = text[pos:m.start()]
        if m.group(1):
            lit = lit.rstrip(" \t\n")
        out.append(("text", lit))
        out.append(("action", m.group(2), bool(m.group(3))))
        pos = m.end()
    out.append(("text", text[pos:]))
    # Right trims apply to the following text.
    res, trim_next = [], False
    for t in out:
        if t[0] == "text":
            res.append(("text", t[1].lstrip(" \t\n") if trim_next else t[1]))
            trim_next = False
        else:
            res.append(("action", t[1]))
            trim_next = t[2]
    return res


def parse(tokens, i=0, stop=("end",)):
    """Returns (nodes, index of the stop token, stop word)."""
    nodes = []
    while i < len(tokens):
        t = tokens[i]
        if t[0] == "text":
            nodes.append(("text", t[1]))
            i += 1
            continue
        word = t[1].split()[0] if t[1] else ""
        if word in stop:
            return nodes, i, word
        if word == "if":
            body, i, w = parse(tokens, i + 1, ("else", "end"))
            other = []
            if w == "else":
                other, i, _ = parse(tokens, i + 1, ("end",))
            nodes.append(("if", t[1][2:].strip(), body, other))
            i += 1
        elif word == "define":
            name = t[1].split(None, 1)[1].strip().strip('"')
            body, i, _ = parse(tokens, i + 1, ("end",))
            nodes.append(("define", name, body))
            i += 1
        elif word in ("range", "with", "template", "block"):
            sys.exit(f"render_chart: unsupported action {{{{ {t[1]} }}}}")
        else:
            nodes.append(("expr", t[1]))
            i += 1
    return nodes, i, None


def lookup(path, ctx):
    cur = ctx
    for part in path.lstrip(".").split("."):
        if part == "":
            continue
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def atom(s, ctx):
    if s.startswith('"'):
        return s[1:-1]
    if s == ".":
        return ctx
    if s.startswith("."):
        return lookup(s, ctx)
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    if s in ("true", "false"):
        return s == "true"
    sys.exit(f"render_chart: unsupported operand {s!r}")


def to_yaml(v):
    if v is None:
        return ""
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def call(fn, args, ctx, defines):
    if fn == "eq":
        return args[0] == args[1]
    if fn == "ne":
        return args[0] != args[1]
    if fn == "not":
        return not args[0]
    if fn == "toYaml":
        return to_yaml(args[0])
    if fn == "nindent":
        return "\n" + "\n".join(" " * args[0] + ln if ln else ln for ln in str(args[1]).split("\n"))
    if fn == "indent":
        return "\n".join(" " * args[0] + ln if ln else ln for ln in str(args[1]).split("\n"))
    if fn == "quote":
        return '"' + str(args[0]).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if fn == "include":
        return render(defines[args[0]], args[1], defines).strip("\n")
    sys.exit(f"render_chart: unsupported function {fn}")


def evaluate(expr, ctx, defines):
    value, first = None, True
    for stage in [s.strip() for s in expr.split("|")]:
        parts = re.findall(r'"[^"]*"|\S+', stage)
        if parts[0] in ("eq", "ne", "not", "toYaml", "nindent", "indent", "quote", "include"):
            args = [atom(p, ctx) for p in parts[1:]]
            if not first:
                args.append(value)
            value = call(parts[0], args, ctx, defines)
        else:
            if len(parts) != 1 or not first:
                sys.exit(f"render_chart: unsupported expression {expr!r}")
            value = atom(parts[0], ctx)
        first = False
    return value


def render(nodes, ctx, defines):
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "expr":
            v = evaluate(n[1], ctx, defines)
            out.append("" if v is None else ("true" if v is True else "false" if v is False else str(v)))
        elif n[0] == "if":
            out.append(render(n[2] if evaluate(n[1], ctx, defines) else n[3], ctx, defines))
    return "".join(out)


def merge(base, over):
    """Helm's values merge: maps merge key by key, anything else replaces."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("chart")
    ap.add_argument("-f", "--values", action="append", default=[])
    ap.add_argument("--name", default="otel-ebpf-receiver")
    ap.add_argument("--namespace", default="observability")
    a = ap.parse_args()
    chart = pathlib.Path(a.chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    for f in a.values:
        merge(values, yaml.safe_load(pathlib.Path(f).read_text()) or {})
    ctx = {
        "Values": values,
        "Release": {"Name": a.name, "Namespace": a.namespace},
        "Chart": {"Name": meta["name"], "AppVersion": meta.get("appVersion", "")},
    }
    defines, docs = {}, []
    templates = sorted((chart / "templates").iterdir())
    parsed = {}
    for t in templates:
        nodes, _, _ = parse(tokenize(t.read_text()))
        parsed[t] = nodes
        for n in nodes:
            if n[0] == "define":
                defines[n[1]] = n[2]
    for t in templates:
        if t.name.startswith("_"):
            continue
        text = render([n for n in parsed[t] if n[0] != "define"], ctx, defines)
        if text.strip():
            docs.append(f"# Source: {chart.name}/templates/{t.name}\n{text.strip()}\n")
    sys.stdout.write("---\n".join(docs))


if __name__ == "__main__":
    main()
