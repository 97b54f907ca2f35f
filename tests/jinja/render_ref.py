#!/usr/bin/env python3
"""Expected chat template renderings, as transformers renders them.

    render_ref.py OUT_DIR TEMPLATE.jinja...

For every template and every case of cases.json, renders with python3-jinja2
configured as transformers' apply_chat_template configures it
(transformers/utils/chat_template_utils.py: ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks, loopcontrols and the {% generation %} tag; tojson
as json.dumps(ensure_ascii=False, ...); raise_exception and strftime_now) and
writes OUT_DIR/<template>__<case>.out (the text, as UTF-8) or, when the
template raises, OUT_DIR/<template>__<case>.err (the exception).  The case's
bos/eos become bos_token/eos_token, tools=None and documents=None when absent.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    """transformers' {% generation %} tag; without return_assistant_tokens_mask it renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_assistant"), [], [], body).set_lineno(lineno)

    def _render_assistant(self, caller):
        return caller()


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    out_dir, templates = sys.argv[1], sys.argv[2:]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    env = environment()
    for path in templates:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            source = f.read()
        try:
            compiled, compile_error = env.from_string(source), None
        except Exception as e:   # a syntax error fails every case
            compiled, compile_error = None, e
        for case in cases:
            base = os.path.join(out_dir, f"{name}__{case['name']}")
            try:
                if compile_error:
                    raise compile_error
                kwargs = {"messages": case["messages"], "tools": case.get("tools"), "documents": None,
                          "add_generation_prompt": case.get("add_generation_prompt", True)}
                for k in ("bos_token", "eos_token"):
                    if k in case:
                        kwargs[k] = case[k]
                text = compiled.render(**kwargs)
                with open(base + ".out", "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            except Exception as e:
                with open(base + ".err", "w", encoding="utf-8") as f:
                    f.write(f"{type(e).__name__}: {e}\n")


if __name__ == "__main__":
    main()
