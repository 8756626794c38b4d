"""Golden renders of chat templates through transformers' own machinery (jinja2 sandbox with
trim_blocks/lstrip_blocks, its tojson, raise_exception, strftime_now).

Reads ../../Tests/Fixtures/chat_templates/templates/<name>.jinja: templates in the styles of public
Hugging Face models (ChatML, Qwen2.5, Qwen3, SmolLM2, Llama-3, Llama-3.1/3.2, Llama-2, Mistral v0.1/v0.3,
Gemma, Gemma-3, Phi-3, Zephyr), written from their published tokenizer_config.json files as faithfully as
memory allows; the golden is whatever jinja2 renders for them, so small differences do not matter.
Writes beside them:
  cases.json               {template, messages, add_generation_prompt, bos/eos, extra} -> text or error
  features.json            small templates exercising one interpreter feature each -> text or error
Run from Scripts/reference/ as `python3 gen_chat_templates.py`. Deterministic: no clock is read by any
case (date_string is always passed where a template would call strftime_now).
"""
import json
import os
import warnings

warnings.filterwarnings("ignore")

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import render_jinja_template

# name -> (bos_token, eos_token), as each family's tokenizer_config.json sets them.
SPECIAL_TOKENS = {
    "chatml": (None, "<|im_end|>"),
    "qwen2_5": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "smollm2": (None, "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("<s>", "</s>"),
    "mistral_v1": ("<s>", "</s>"),
    "mistral_v3": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"),
    "gemma3": ("<bos>", "<eos>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "zephyr": ("<s>", "</s>"),
}

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../Tests/Fixtures/chat_templates")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Zürich"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
            "return": {"type": "number"},
        },
    }
]

TOOL_CALL = {"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_multi_turn": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ],
    "no_system_multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ],
    "unicode": [
        {"role": "user", "content": "Grüße aus Köln — ça va? 世界 🎉 naïve café"},
        {"role": "assistant", "content": "Très bien! 你好 👋 ½ ≠ ∞"},
        {"role": "user", "content": "Ελληνικά και русский\u00a0текст"},
    ],
    "whitespace": [
        {"role": "system", "content": "  Be precise.  \n"},
        {"role": "user", "content": "  Line one\nline two  \n\n\tindented\n"},
        {"role": "assistant", "content": "\n Answer with trailing space \n\n"},
        {"role": "user", "content": "quotes ' \" and backslash \\ and {{ braces }} {% tag %}"},
    ],
    "bad_alternation": [
        {"role": "user", "content": "First"},
        {"role": "user", "content": "Second"},
    ],
    "tools_call": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Zürich?"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "{\"temperature\": 21.5}", "tool_call_id": "call12345", "name": "get_weather"},
        {"role": "assistant", "content": "It is 21.5 °C in Zürich."},
        {"role": "user", "content": "Thanks"},
    ],
    "content_parts": [
        {"role": "system", "content": [{"type": "text", "text": "You describe images."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What is in this picture? "}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat on a mat."}]},
    ],
    "reasoning": [
        {"role": "user", "content": "Is 17 prime?"},
        {"role": "assistant", "content": "Yes, 17 is prime.", "reasoning_content": "17 has no divisors besides 1 and 17."},
        {"role": "user", "content": "And 21?"},
        {"role": "assistant", "content": "<think>\n21 = 3 * 7\n</think>\n\nNo, 21 = 3 × 7."},
    ],
    "assistant_last": [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi"},
    ],
}

# Extra template variables per (template, conversation); every case gets date_string.
EXTRAS = {
    ("qwen3", "single_user"): [{}, {"enable_thinking": False}],
    ("llama3_1", "single_user"): [{}, {"tools_in_user_message": False, "tools": TOOLS}],
    ("llama3_1", "system_multi_turn"): [{}, {"builtin_tools": ["brave_search", "code_interpreter"]}],
}
TOOL_CONVERSATIONS = {"tools_call"}


def tokenizer(bos, eos):
    words = {"[UNK]": 0}
    for t in (bos, eos):
        if t is not None:
            words[t] = len(words)
    tok = Tokenizer(WordLevel(words, unk_token="[UNK]"))
    kwargs = {}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def outcome(fn):
    try:
        return {"expected": fn()}
    except Exception as e:  # the golden is the error jinja2 raises
        return {"error": {"type": type(e).__name__, "message": str(e)}}


def chat_cases():
    cases = []
    for name, (bos, eos) in SPECIAL_TOKENS.items():
        with open(os.path.join(OUT, "templates", name + ".jinja"), encoding="utf-8", newline="") as f:
            template = f.read()
        tok = tokenizer(bos, eos)
        for conv_name, messages in CONVERSATIONS.items():
            extras = EXTRAS.get((name, conv_name), [{}])
            for extra_index, extra in enumerate(extras):
                extra = {"date_string": "23 Nov 2026", **extra}
                if conv_name in TOOL_CONVERSATIONS:
                    extra = {**extra, "tools": TOOLS}
                for gen in (False, True):
                    kwargs = {k: v for k, v in extra.items() if k != "tools"}

                    def run():
                        return tok.apply_chat_template(messages, tools=extra.get("tools"), chat_template=template,
                                                       add_generation_prompt=gen, tokenize=False, **kwargs)

                    case = {
                        "name": f"{name}/{conv_name}/{extra_index}/{'gen' if gen else 'nogen'}",
                        "template": name,
                        "messages": messages,
                        "add_generation_prompt": gen,
                        "bos_token": bos,
                        "eos_token": eos,
                        "extra": extra,
                    }
                    case.update(outcome(run))
                    cases.append(case)
    return cases


# (name, template, context) rendered with messages=[] through render_jinja_template.
FEATURES = [
    ("print_values", "{{ 1 }}|{{ 1.5 }}|{{ 2.0 }}|{{ 1e20 }}|{{ 'a' }}|{{ true }}|{{ none }}|{{ [1, 'b', none, false, 1.0] }}|{{ {'k': 'v', 'n': [1]} }}|{{ (1,) }}|{{ (1, 'x') }}", {}),
    ("print_string_reprs", "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'tab\\tnl\\n', 'back\\\\slash', 'é✓'] }}", {}),
    ("undefined_prints_empty", "[{{ nothing }}][{{ d.missing }}][{{ nothing|default('dflt') }}][{{ d.missing is defined }}][{{ nothing is undefined }}]", {"d": {"a": 1}}),
    ("whitespace_control", "a  {{- ' b ' -}}  c\n  {%- if true -%}  d  {%- endif -%}\n e {#- comment -#} f", {}),
    ("trim_lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n{# c #}\n  y  {#- c -#}  z\n  {%+ if true %}plus{% endif +%}\nend\n", {}),
    ("lstrip_not_for_variables", "  {{ 'v' }}\n    {% if true %}b{% endif %}  {% if true %}c{% endif %}\n", {}),
    ("trailing_newline_dropped", "line\n\n", {}),
    ("raw_block", "{% raw %}{{ not parsed }}{% endraw %}|  {%- raw -%}  x  {%- endraw %}", {}),
    ("crlf_source", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("for_loop_vars", "{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ x }};{% endfor %}", {}),
    ("for_prev_next_cycle", "{% for x in [1,2,3] %}{{ loop.previtem|default('-') }}{{ x }}{{ loop.nextitem|default('-') }}{{ loop.cycle('o','e') }} {% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.length }},{% endfor %}", {}),
    ("for_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("for_items_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{% for (a, b) in [[1, 2]] %}{{ a + b }}{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("for_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héllo' %}{{ c }}.{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("nested_loop_scoping", "{% set x = 0 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% for j in [10] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}{{ x }}", {}),
    ("if_scope_leaks", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(total=0, items=[]) %}{% for i in [1,2,3] %}{% set ns.total = ns.total + i %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.total }}{{ ns.items }}{{ ns.missing is defined }}", {}),
    ("if_elif_else", "{% for v in [0, 1, 2] %}{% if v == 0 %}zero{% elif v == 1 %}one{% else %}many{% endif %} {% endfor %}", {}),
    ("set_block", "{% set block %}  inner {{ 1 + 1 }}  {% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }} {{ greet(name='Cy') }}", {}),
    ("arithmetic", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.5 }} {{ true + 1 }} {{ 4 / 2 }} {{ 0.1 + 0.2 }} {{ -(3) }} {{ 2 * 3 ** 2 }} {{ 1 - 2 - 3 }}", {}),
    ("string_ops", "{{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'x' ~ 1 ~ none ~ true }} {{ 'abc'[0] }} {{ 'abc'[-1] }} {{ [1, 2] + [3] }} {{ \"dq\" 'sq' }}", {}),
    ("slicing", "{{ [1,2,3,4,5][1:] }} {{ [1,2,3,4,5][:-1] }} {{ [1,2,3,4,5][::-1] }} {{ [1,2,3,4,5][::2] }} {{ [1,2,3,4,5][-2:] }} {{ 'héllo'[1:3] }} {{ 'abc'[::-1] }} {{ [1,2,3][5:] }} {{ [1,2,3][1:100] }} {{ [1,2,3,4][3:0:-1] }}", {}),
    ("comparison", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ none == none }} {{ true == 1 }}", {}),
    ("logic", "{{ true and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ none or [] }} {{ '' and 1 }} {{ 'a' if false else 'b' }} {{ 'a' if true }} [{{ 'a' if false }}] {{ not true or true }}", {}),
    ("literals", "{{ [1, 2,] }} {{ {'a': 1,} }} {{ 1_000 }} {{ 0x1F }} {{ 1.5e3 }} {{ True }} {{ False }} {{ None }} {{ 'esc\\x41\\u00e9\\n' }} {{ 'unknown \\d escape' }}", {}),
    ("tests", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is integer }} {{ true is boolean }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ true is true }} {{ 0 is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is eq 'a' }} {{ 'a' is equalto('b') }} {{ 2 is gt 1 }} {{ 'ab' is lower }} {{ x is not none }} {{ 2 is in [1, 2] }}", {"x": 1}),
    ("filters_strings", "{{ '  pad  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hello World'|upper }}|{{ 'Hello'|lower }}|{{ 'hello wORLD-foo(bar'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'abc'|reverse }}|{{ 'x'|center(5) }}|{{ '<&>\"\\''|e }}|{{ 'a'|safe }}|{{ 3|string ~ 'x' }}|{{ 'one two  three'|wordcount }}", {}),
    ("filters_sequences", "{{ [3,1,2]|length }} {{ 'héllo'|count }} {{ [3,1,2]|first }} {{ [3,1,2]|last }} {{ [3,1,2]|join(',') }} {{ [1,'a']|join }} {{ 'abc'|list }} {{ [3,1,2]|sort }} {{ [3,1,2]|sort(reverse=true) }} {{ ['b','A','c']|sort }} {{ ['b','A','c']|sort(case_sensitive=true) }} {{ [1,2,1,3]|unique|list }} {{ [1,2,3]|reverse|list }} {{ [1,2,3]|sum }} {{ [1,5,3]|max }} {{ [4,2,8]|min }} {{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value', reverse=true) }} {{ {'x': 1}|items|list }} {{ []|first is defined }}", {}),
    ("filters_numbers", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 'y'|float }} {{ 3|float }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.3|round(0, 'ceil') }} {{ 2.7|round(0, 'floor') }} {{ 5|round }} {{ -3|abs }} {{ -2.5|abs }} {{ '%s and %d'|format('a', 3) }} {{ '%05.1f|%-4s|%x'|format(3.14159, 'ab', 255) }}", {}),
    ("filters_attr", "{{ users|selectattr('active')|map(attribute='name')|join(',') }} {{ users|rejectattr('active')|map(attribute='name')|list }} {{ users|selectattr('name', 'equalto', 'b')|list|length }} {{ users|map(attribute='missing', default='?')|list }} {{ users|sort(attribute='age')|map(attribute='name')|join }} {{ [0, 1, '', 'x']|select|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ ['A','b']|map('lower')|list }} {{ users|map(attribute='meta.k')|list }} {{ users|sum(attribute='age') }}", {"users": [{"name": "a", "active": True, "age": 30, "meta": {"k": 1}}, {"name": "b", "active": False, "age": 20, "meta": {"k": 2}}, {"name": "c", "active": True, "age": 25, "meta": {"k": 3}}]}),
    ("filter_default_boolean", "{{ ''|default('e') }}|{{ ''|default('e', true) }}|{{ none|d('n') }}|{{ none|d('n', boolean=true) }}|{{ 0|default(5) }}", {}),
    ("filter_indent", "{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'a\nb'|indent('> ') }}", {}),
    ("tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ [1, [2, {}], []]|tojson(indent=1) }}|{{ 'é\"\\\\\n\t<>&\\u0001'|tojson }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ d|tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': [true, none, 1.5]}|tojson(sort_keys=true) }}|{{ (1, 2)|tojson }}|{{ {1: 'int key'}|tojson }}|{{ 1e100|tojson }}|{{ d|tojson(indent='\t') }}", {"d": {"name": "Zürich 🎉", "n": 3, "f": 2.5, "ok": True, "none": None, "list": [1, "two"]}}),
    ("string_methods", "{{ '  s  '.strip() }}|{{ 'xxsxx'.strip('x') }}|{{ '  s  '.lstrip() }}|{{ '  s  '.rstrip() }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'abc'.upper() }}|{{ 'ABC'.lower() }}|{{ 'a-b'.replace('-', '_') }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'abcabc'.find('c') }}|{{ 'abc'.find('z') }}|{{ 'abcabc'.rfind('c') }}|{{ 'aaa'.count('a') }}|{{ ','.join(['x', 'y']) }}|{{ '{} and {}'.format(1, 'two') }}|{{ '{0}{name}'.format('p', name='n') }}|{{ 'l1\nl2\r\nl3'.splitlines() }}|{{ '12'.isdigit() }}|{{ 'ab'.isalpha() }}", {}),
    ("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ d['a'] }} {{ d.a }} {{ d['missing'] is defined }} {{ d|length }}", {"d": {"a": 1, "b": [2]}}),
    ("attribute_vs_item", "{{ d.items is defined }} {{ d['items'] }} {{ d.keys is callable }} {{ s['upper']() }} {{ l[0] }} {{ l.0 }} {{ l[-1] }} {{ l[10] is defined }}", {"d": {"items": "item-value"}, "s": "abc", "l": ["x", "y"]}),
    ("dict_global_and_range", "{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }}", {}),
    ("chained_filters_precedence", "{{ -3|abs }} {{ 'a' ~ 'b'|upper }} {{ 1 + [1,2]|length }} {{ not 'x'|length }} {{ ['a', 'b']|join('-')|upper }} {{ 'x' if 'abc'|length > 2 else 'y' }}", {}),
    ("message_like_access", "{% for m in msgs %}{{ m.role }}:{{ m['content'] }}{% if m.tool_calls is defined %}[{{ m.tool_calls|length }}]{% endif %};{% endfor %}", {"msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [{"a": 1}]}]}),
    ("generation_tag", "{% for m in msgs %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}", {"msgs": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("filter_block", "{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("loop_changed_depth", "{% for x in [1, 1, 2] %}{{ loop.changed(x) }}{% for y in [0] %}{{ loop.depth }}{% endfor %}{{ loop.depth0 }} {% endfor %}", {}),
    ("ws_tabs_and_trailing_spaces", "\t{% if true %}  \n\tA\n \t {%- if true %}\n B{% endif %}   \n{% endif %}\nC", {}),
    ("ws_comment_lines", "x\n   {# a comment #}\ny\n{#- stripped #}   z\n  {#+ kept indent #}w", {}),
    ("ws_block_after_text_same_line", "text {% if true %}\nT\n{% endif %} tail\n  {% for i in [1,2] %}\n  - {{ i }}\n  {% endfor %}\ndone", {}),
    ("ws_variable_minus", "a\n\n   {{- 'b' }}\n\n  {{ 'c' -}}  \n\n d", {}),
    ("ws_plus_block_end", "{% if true +%}\nkeep newline{% endif +%}\n.", {}),
    ("ws_minus_variable_at_start", "{{- ' lead' }}{{ 'x' }}", {}),
    ("nested_structures_repr", "{{ {'a': [1, 2.5, {'b': none}], 'c': ('t', True), 'é': 'ü'} }}", {}),
    ("floats_repr", "{{ 1/3 }} {{ 2.0 * 3 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }} {{ 10 ** 20 if false else 3.0e-7 }} {{ 123456789.123456789 }}", {}),
    ("context_values_repr", "{{ v }}|{{ v.nested }}|{{ v.list[1] }}|{{ v.float }}|{{ v.bool }}", {"v": {"nested": {"x": [1, "two", None]}, "list": ["a", "b"], "float": 0.5, "bool": False}}),
    ("conditional_expression_nesting", "{{ 'a' if x == 1 else 'b' if x == 2 else 'c' }}{% set y = 'yes' if x else 'no' %}{{ y }}", {"x": 2}),
    ("macro_scope_and_recursion", "{% set outer = 'O' %}{% macro m(n) %}{{ outer }}{{ n }}{% if n > 0 %}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(2) }}", {}),
    ("set_tuple_unpack", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, %}{{ t }}", {}),
    ("loop_over_messages_slice", "{% for m in msgs[1:] %}{{ loop.index }}{{ m }}{% endfor %}|{% for m in msgs[::-1] %}{{ m }}{% endfor %}|{{ msgs[-1] }}", {"msgs": ["a", "b", "c"]}),
    ("string_escapes_in_output", "{{ \"line1\\nline2\" }}|{{ 'tab\\there' }}|{{ '\\'' }}|{{ \"\\\"\" }}", {}),
    ("in_operator_variants", "{{ 'a' in ['a'] }}{{ 'a' in 'cat' }}{{ 'x' in {'x': 1} }}{{ 1 in [1.0] }}{{ none in [none] }}{{ 'k' not in {} }}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 0.1] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("integer_division_results", "{{ 6 / 3 }} {{ 6 // 4 }} {{ 6.0 // 4 }} {{ -6 // 4 }} {{ 6 % -4 }} {{ 5.5 % 2 }} {{ 2 ** 0.5 }}", {}),
    ("length_of_unicode", "{{ 'héllo 🎉'|length }} {{ '🎉'[0] }} {{ 'a🎉b'[1:] }} {{ 'e\u0301'|length }}", {}),
    ("upper_lower_unicode", "{{ 'straße'|upper }} {{ 'ÀÉÎ'|lower }} {{ 'éa'.title() }} {{ 'ñandú'|capitalize }}", {}),
    ("sort_mixed_case_stable", "{{ ['b', 'B', 'a', 'A']|sort }} {{ [{'n': 2, 'k': 'x'}, {'n': 1, 'k': 'y'}, {'n': 2, 'k': 'z'}]|sort(attribute='n')|map(attribute='k')|join }} {{ [3, 1, 2]|sort(reverse=true)|first }}", {}),
    ("join_non_strings", "{{ [1, none, true, 2.5]|join('|') }} {{ ['a', 'b']|join(attribute=0) }}", {}),
    ("default_on_attribute_chain", "{{ d.a|default('x') }} {{ d.b.c|default('y') if d.b is defined else 'nob' }} {{ (d.missing or 'fallback') }}", {"d": {"a": None}}),
    ("tojson_nested_indent", "{{ tools|tojson(indent=4) }}", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}, "required": []}}}]}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}|{{ m(1) }}|{% macro n(a) %}[{{ a }}]{% endmacro %}{{ n() }}", {}),
    ("macro_sees_later_top_level_set", "{% macro m() %}[{{ x }}]{% endmacro %}{{ m() }}{% set x = 1 %}{{ m() }}{% for i in [7] %}{% set y = 5 %}{% macro k() %}{{ y }}{{ i }}{% endmacro %}{{ k() }}{% endfor %}", {}),
    # Errors: the golden records jinja2's exception type and message.
    ("error_raise_exception", "{% if true %}\n{{ raise_exception('Custom failure: ' ~ 42) }}\n{% endif %}", {}),
    ("error_undefined_attribute", "{{ d.missing.deeper }}", {"d": {}}),
    ("error_undefined_name_attribute", "{{ nothing.attr }}", {}),
    ("error_concat_str_int", "{{ 'a' + 1 }}", {}),
    ("error_concat_list_str", "{{ [1] + 'a' }}", {}),
    ("error_add_int_str", "{{ 1 + 'a' }}", {}),
    ("error_undefined_arithmetic", "{{ nothing + 1 }}", {}),
    ("error_division_by_zero", "{{ 1 / 0 }}", {}),
    ("error_compare_types", "{{ 1 < 'a' }}", {}),
    ("error_call_non_callable", "{{ 'abc'() }}", {}),
    ("error_unsafe_append", "{% set l = [1] %}{{ l.append(2) }}", {}),
    ("error_tojson_undefined", "{{ nothing|tojson }}", {}),
    ("error_iterate_int", "{% for x in 5 %}{% endfor %}", {}),
    ("error_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("error_in_int", "{{ 1 in 5 }}", {}),
    ("error_namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("error_len_int", "{{ 5|length }}", {}),
    ("error_undefined_filter_value_compare", "{{ nothing > 1 }}", {}),
    ("error_slice_step_zero", "{{ [1, 2][::0] }}", {}),
    ("error_raise_in_macro", "{% macro check(x) %}{% if x < 0 %}{{ raise_exception('negative: ' ~ x) }}{% endif %}{% endmacro %}{{ check(1) }}{{ check(-1) }}", {}),
    ("error_none_concat", "{{ 'a' + none }}", {}),
    ("error_int_overflow_is_fine_in_python", "{{ 2 ** 62 }}", {}),
    ("error_none_attribute", "{{ x.y.z }}", {"x": {"y": None}}),
    ("error_list_element", "{{ messages[0].content }}", {}),
    ("error_namespace_attribute", "{% set ns = namespace(a=1) %}{{ ns.b.c }}", {}),
    ("error_loop_attribute", "{% for i in [1] %}{{ loop.nothing.x }}{% endfor %}", {}),
    ("error_string_method_missing", "{{ 'abc'.nomethod() }}", {}),
    ("error_break_outside_loop", "a\n{% break %}", {}),
    ("error_macro_too_many_args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("error_items_non_mapping", "{{ [1]|items|list }}", {}),
]


def feature_cases():
    cases = []
    for name, template, context in FEATURES:
        def run():
            rendered, _ = render_jinja_template(conversations=[[]], chat_template=template, **context)
            return rendered[0]
        case = {"name": name, "template": template, "context": context}
        case.update(outcome(run))
        cases.append(case)
    return cases


def main():
    for filename, cases in (("cases.json", chat_cases()), ("features.json", feature_cases())):
        with open(os.path.join(OUT, filename), "w", encoding="utf-8") as f:
            json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)
            f.write("\n")
        errors = sum(1 for c in cases if "error" in c)
        print(f"{filename}: {len(cases)} cases ({errors} expect an error)")


if __name__ == "__main__":
    main()
