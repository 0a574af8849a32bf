"""Prompt variables: placeholders, rendering, missing variables and their suggestions."""

from __future__ import annotations

import pytest

from dialler.campaigns.checks import StartFacts, start_warnings
from dialler.campaigns.spec import CampaignSpec
from dialler.domain.prompt import (
    Form,
    Missing,
    format_missing,
    missing_variables,
    placeholders,
    prompt_warnings,
    render,
)

# --- placeholders ----------------------------------------------------------------------------


def test_flat_and_namespaced_forms_in_order() -> None:
    found = placeholders("Hello {{CustomerName}}, your {{call.Plan}} plan")
    assert [(p.form, p.name, p.text) for p in found] == [
        (Form.FLAT, "CustomerName", "{{CustomerName}}"),
        (Form.NAMESPACED, "Plan", "{{call.Plan}}"),
    ]
    assert [p.start for p in found] == [6, 29]
    assert all(p.valid and p.problem is None for p in found)


def test_whitespace_inside_the_braces() -> None:
    found = placeholders("{{ Name }} {{\tcall.Plan  }} {{\n  Town\n}}")
    assert [(p.form, p.name) for p in found] == [
        (Form.FLAT, "Name"),
        (Form.NAMESPACED, "Plan"),
        (Form.FLAT, "Town"),
    ]


def test_names_take_letters_digits_underscores_and_dashes() -> None:
    found = placeholders("{{first_name}} {{plan-2}} {{Prénom}} {{call.x_1-y}} {{call}}")
    assert [p.name for p in found] == ["first_name", "plan-2", "Prénom", "x_1-y", "call"]


def test_no_placeholders() -> None:
    assert placeholders('Hello there. { single } braces, }} and JSON {"a": {"b": 1}}') == []


@pytest.mark.parametrize(
    ("prompt", "text", "problem"),
    [
        ("a {{}} b", "{{}}", "no variable name between the braces"),
        ("a {{   }} b", "{{   }}", "no variable name between the braces"),
        ("a {{call.}} b", "{{call.}}", "no variable name after 'call.'"),
        ("a {{ x y }} b", "{{ x y }}", "'x y' is not a variable name: a name has no spaces"),
        ("a {{call. x}} b", "{{call. x}}", "' x' is not a variable name: a name has no spaces"),
        (
            "a {{a.b}} b",
            "{{a.b}}",
            "'a.b' is not a variable name: '.' only follows the 'call.' prefix ({{call.NAME}})",
        ),
        (
            "a {{Call.Plan}} b",
            "{{Call.Plan}}",
            "'Call.Plan' is not a variable name: '.' only "
            "follows the 'call.' prefix ({{call.NAME}})",
        ),
        (
            "a {{name!}} b",
            "{{name!}}",
            "'name!' is not a variable name (letters, digits, '_' and '-' only)",
        ),
        ("a {{ Name b", "{{", "'{{' without a closing '}}' (before the next '{{' or the end)"),
    ],
)
def test_malformed_placeholders_are_reported(prompt: str, text: str, problem: str) -> None:
    [found] = placeholders(prompt)
    assert (found.form, found.name, found.valid) == (Form.INVALID, None, False)
    assert (found.text, found.problem) == (text, problem)


def test_an_unclosed_placeholder_before_a_good_one() -> None:
    found = placeholders("{{ oops {{Name}}")
    assert [(p.text, p.form) for p in found] == [("{{", Form.INVALID), ("{{Name}}", Form.FLAT)]


def test_lines_of_placeholders() -> None:
    found = placeholders("Hi {{a}}\n\nthen {{ x y }}\nand {{b}} {{c}}")
    assert [p.line for p in found] == [1, 3, 4, 4]


# --- render ----------------------------------------------------------------------------------


def test_both_forms_resolve_the_same_variable() -> None:
    rendered = render(
        "Hello {{CustomerName}}, your {{call.Plan}} plan ({{ call.CustomerName }})",
        {"CustomerName": "Ann", "Plan": "gold"},
    )
    assert rendered.text == "Hello Ann, your gold plan (Ann)"
    assert rendered.unresolved == []
    assert rendered.invalid == []


def test_names_are_case_sensitive() -> None:
    rendered = render("Hello {{name}}", {"Name": "Ann"})
    assert rendered.text == "Hello "
    assert rendered.unresolved == ["name"]


def test_missing_variables_are_listed_once_and_leave_no_braces() -> None:
    rendered = render("{{A}} {{call.B}} {{A}} {{ C }} {{call.A}} ok", {"C": "c"})
    assert rendered.text == "   c  ok"
    assert rendered.unresolved == ["A", "B"]
    assert "{" not in rendered.text and "}" not in rendered.text


def test_repeated_placeholders_all_resolve() -> None:
    assert render("{{x}}-{{x}}-{{call.x}}", {"x": "1"}).text == "1-1-1"


@pytest.mark.parametrize("value", ["{{evil}}", "}}{{", "{{call.Plan}}", "{{", "}}", "{x}"])
def test_values_are_inserted_literally_never_expanded_again(value: str) -> None:
    rendered = render("a {{Name}} {{Plan}} b", {"Name": value, "Plan": "gold", "evil": "!"})
    assert rendered.text == f"a {value} gold b"
    assert rendered.unresolved == []


def test_empty_values_count_as_resolved() -> None:
    rendered = render("Hello {{Name}}!", {"Name": ""})
    assert (rendered.text, rendered.unresolved) == ("Hello !", [])


def test_malformed_placeholders_are_left_out_and_reported() -> None:
    rendered = render("a {{}} b {{ x y }} c {{call.}} d {{ Name e", {"Name": "Ann"})
    assert rendered.text == "a  b  c  d  Name e"
    assert rendered.unresolved == []
    assert [p.text for p in rendered.invalid] == ["{{}}", "{{ x y }}", "{{call.}}", "{{"]


def test_text_around_placeholders_is_kept_as_it_is() -> None:
    prompt = 'Say {"a": {"b": 1}} and } or { then {{Name}}.\n'
    assert render(prompt, {"Name": "Ann"}).text == 'Say {"a": {"b": 1}} and } or { then Ann.\n'


def test_a_prompt_without_placeholders_is_unchanged() -> None:
    rendered = render("Hello there.", {})
    assert (rendered.text, rendered.unresolved, rendered.invalid) == ("Hello there.", [], [])


# --- missing variables and suggestions -------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "suggestion"),
    [
        (["CUSTOMERNAME"], "CUSTOMERNAME"),
        (["customername"], "customername"),
        (["Customer_Name"], "Customer_Name"),
        (["customer_name"], "customer_name"),
        (["Customer Name"], "Customer Name"),
        ([" CustomerName "], " CustomerName "),
        (["customer-name"], "customer-name"),
        (["CustomerNme"], "CustomerNme"),
        (["CustomerNames"], "CustomerNames"),
        (["Plan", "Town"], None),
        (["Name"], None),
        ([], None),
    ],
)
def test_suggestions(available: list[str], suggestion: str | None) -> None:
    assert missing_variables("Hello {{CustomerName}}", available) == [
        Missing("CustomerName", suggestion, Form.FLAT)
    ]


def test_the_suggestion_equal_up_to_case_comes_first() -> None:
    [missing] = missing_variables("{{CustomerName}}", ["customer_name", "CUSTOMERNAME"])
    assert missing.suggestion == "CUSTOMERNAME"


def test_a_typo_in_the_prompt_is_caught_too() -> None:
    [missing] = missing_variables("Hello {{CustomerNme}}", ["CustomerName"])
    assert missing.suggestion == "CustomerName"


def test_present_variables_are_not_missing_and_each_missing_one_is_listed_once() -> None:
    prompt = "{{Name}} {{call.Plan}} {{Plan}} {{call.Town}} {{ x y }}"
    assert missing_variables(prompt, iter(["Name"])) == [
        Missing("Plan", None, Form.NAMESPACED),
        Missing("Town", None, Form.NAMESPACED),
    ]
    assert missing_variables(prompt, ["Name", "Plan", "Town"]) == []


def test_format_missing() -> None:
    assert format_missing(Missing("CustomerName", "CUSTOMERNAME")) == (
        "prompt variable {{CustomerName}} has no column in the contacts (did you mean "
        "'CUSTOMERNAME'?)"
    )
    assert format_missing(
        Missing("Plan", None, Form.NAMESPACED), "is not among this contact's variables"
    ) == ("prompt variable {{call.Plan}} is not among this contact's variables")


def test_prompt_warnings_list_missing_variables_then_malformed_placeholders() -> None:
    prompt = "Hello {{CustomerName}},\nyour {{call.Plan}} plan {{ x y }}"
    assert prompt_warnings(prompt, ["phone", "CUSTOMERNAME"]) == [
        "prompt variable {{CustomerName}} has no column in the contacts (did you mean "
        "'CUSTOMERNAME'?)",
        "prompt variable {{call.Plan}} has no column in the contacts",
        "prompt placeholder '{{ x y }}' (line 2 of the prompt) is malformed: 'x y' is not a "
        "variable name: a name has no spaces; the bot is given nothing in its place",
    ]
    assert prompt_warnings("Hello {{Name}}", ["Name"]) == []


def test_a_long_malformed_placeholder_is_shortened_in_the_message() -> None:
    [warning] = prompt_warnings("{{ " + "word " * 30 + "}}", [])
    assert warning.startswith("prompt placeholder '{{ word word")
    assert "…' (line 1 of the prompt) is malformed" in warning


# --- the start warnings ----------------------------------------------------------------------


def start_facts(
    prompt: str | None, variables: tuple[str, ...], has_contacts: bool = True
) -> StartFacts:
    return StartFacts(
        spec=CampaignSpec(name="R", bot="b", numbers=("+441632960001",)),
        bots=("b",),
        pool={"+441632960001": True},
        has_contacts=has_contacts,
        prompt=prompt,
        contact_variables=variables,
    )


def test_start_warns_about_variables_no_contact_has() -> None:
    facts = start_facts("Hi {{CustomerName}} {{call.Plan}} {{Town}}", ("Town", "CUSTOMERNAME"))
    assert start_warnings(facts) == [
        "prompt variable {{CustomerName}} is not a variable of any contact (did you mean "
        "'CUSTOMERNAME'?)",
        "prompt variable {{call.Plan}} is not a variable of any contact",
    ]


def test_start_without_contacts_or_bot_warns_only_about_malformed_placeholders() -> None:
    assert start_warnings(start_facts("Hi {{Name}}", (), has_contacts=False)) == []
    assert start_warnings(start_facts("Hi {{Name}} {{}}", (), has_contacts=False)) == [
        "prompt placeholder '{{}}' (line 1 of the prompt) is malformed: no variable name "
        "between the braces; the bot is given nothing in its place"
    ]
    assert start_warnings(start_facts(None, ())) == []
