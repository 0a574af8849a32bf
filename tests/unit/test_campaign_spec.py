"""Bot and campaign files: parsing, defaults, strict types with key paths and lines."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dialler.campaigns.spec import (
    BotSpec,
    CampaignSpec,
    Document,
    SpecError,
    parse_bot,
    parse_campaign,
    parse_text,
    read_document,
    system_dispositions,
)
from dialler.campaigns.spec import SpecError as SpecErrorHere
from dialler.domain.rules import RedialPolicy, RetryPolicy
from dialler.domain.states import SYSTEM_DISPOSITIONS
from dialler.errors import InvalidInput, answer_for
from dialler.errors import SpecError as TheSpecError

NUMBERS = ("+441632960001", "+441632960002", "+441632960003")


def doc(text: str, source: str = "c.yaml") -> Document:
    return parse_text(textwrap.dedent(text), source)


def campaign(
    text: str,
    *,
    bots: tuple[str, ...] | None = ("renewals-bot",),
    numbers: tuple[str, ...] | None = NUMBERS,
) -> CampaignSpec:
    return parse_campaign(doc(text), bots=bots, numbers=numbers)


def campaign_problems(text: str, **kwargs: tuple[str, ...] | None) -> list[str]:
    with pytest.raises(SpecError) as info:
        campaign(text, **kwargs)
    return list(info.value.problems)


# --- campaigns: valid files ------------------------------------------------------------------


def test_minimal_campaign_gets_the_contract_defaults() -> None:
    spec = campaign("name: Renewals November\n")
    assert spec == CampaignSpec(
        name="Renewals November",
        bot=None,
        numbers=(),
        concurrency=50,
        window_start="09:00",
        window_end="18:00",
        window_days=("mon", "tue", "wed", "thu", "fri"),
        timezone="UTC",
        always_on=False,
        ring_timeout=30.0,
        retry=RetryPolicy(
            max_attempts=1, delay=1800.0, on_system=frozenset(), on_custom=frozenset()
        ),
        redial=RedialPolicy(
            stop_after_connect_longer_than=None, redial_after_connect_shorter_than=None
        ),
    )


def test_every_key_is_read() -> None:
    spec = campaign("""\
        name: Renewals November
        bot: renewals-bot
        numbers: ["+441632960001", "+441632960003"]
        concurrency: 7
        window: {start: "08:30", end: "24:00", days: [sat, sun], timezone: Europe/London}
        always_on: true
        ring_timeout: 45s
        retry:
          max_attempts: 3
          delay: 1h30m
          on_system: [no_answer, rejected, abandoned]
          on_custom: [call_me_later]
        redial:
          stop_after_connect_longer_than: 20s
          redial_after_connect_shorter_than: 500ms
        """)
    assert spec.bot == "renewals-bot"
    assert spec.numbers == ("+441632960001", "+441632960003")
    assert spec.concurrency == 7
    assert (spec.window_start, spec.window_end) == ("08:30", "24:00")
    assert spec.window_days == ("sat", "sun")
    assert spec.timezone == "Europe/London"
    assert spec.always_on is True
    assert spec.ring_timeout == 45.0
    assert spec.retry == RetryPolicy(
        max_attempts=3,
        delay=5400.0,
        on_system=frozenset({"no_answer", "rejected", "abandoned"}),
        on_custom=frozenset({"call_me_later"}),
    )
    assert spec.redial == RedialPolicy(
        stop_after_connect_longer_than=20.0, redial_after_connect_shorter_than=0.5
    )


def test_blank_values_take_their_defaults() -> None:
    spec = campaign("""\
        name: x
        bot:
        numbers:
        concurrency:
        window:
        always_on:
        ring_timeout:
        retry: {max_attempts: , delay: }
        redial:
        """)
    assert spec == CampaignSpec(name="x")


def test_an_integer_duration_is_seconds() -> None:
    spec = campaign("name: x\nring_timeout: 20\nretry: {delay: 0}\n")
    assert (spec.ring_timeout, spec.retry.delay) == (20.0, 0.0)


def test_unquoted_times_stay_times_and_are_zero_padded() -> None:
    # YAML 1.1 would read 18:00 as the base-60 integer 1080.
    spec = campaign("name: x\nwindow: {start: 9:00, end: 18:00, days: [Mon, TUE]}\n")
    assert (spec.window_start, spec.window_end) == ("09:00", "18:00")
    assert spec.window_days == ("mon", "tue")


def test_a_draft_keeps_an_invalid_window_and_a_low_concurrency_for_the_start_checks() -> None:
    spec = campaign("""\
        name: x
        concurrency: 0
        window: {start: 9am, end: "07:00", days: [], timezone: Mars/Olympus}
        """)
    assert spec.concurrency == 0
    assert (spec.window_start, spec.window_end, spec.window_days, spec.timezone) == (
        "9am",
        "07:00",
        (),
        "Mars/Olympus",
    )


def test_json_is_read_too_even_indented_with_tabs() -> None:
    text = '{\n\t"name": "x",\n\t"numbers": ["+441632960002"],\n\t"concurrency": 3\n}\n'
    spec = parse_campaign(parse_text(text, "c.json"), bots=(), numbers=NUMBERS)
    assert (spec.name, spec.numbers, spec.concurrency) == ("x", ("+441632960002",), 3)


def test_references_are_not_checked_without_the_lists() -> None:
    spec = campaign("name: x\nbot: ghost\nnumbers: ['+15550100']\n", bots=None, numbers=None)
    assert (spec.bot, spec.numbers) == ("ghost", ("+15550100",))


# --- campaigns: problems ---------------------------------------------------------------------


def test_wrong_types_name_the_key_path_and_line() -> None:
    problems = campaign_problems("""\
        name: x
        concurrency: "10"
        always_on: "yes"
        window: {start: 900, days: mon, timezone: 1}
        """)
    assert problems == [
        "c.yaml:2: concurrency: expected an integer, got str '10'",
        "c.yaml:3: always_on: expected true or false, got str 'yes'",
        "c.yaml:4: window.start: expected a string, got int 900 (put the value in quotes)",
        "c.yaml:4: window.days: expected a list, got str 'mon'",
        "c.yaml:4: window.timezone: expected a string, got int 1 (put the value in quotes)",
    ]


def test_concurrency_must_be_an_integer_not_a_bool_or_float() -> None:
    assert campaign_problems("name: x\nconcurrency: true\n") == [
        "c.yaml:2: concurrency: expected an integer, got bool true"
    ]
    assert campaign_problems("name: x\nconcurrency: 2.5\n") == [
        "c.yaml:2: concurrency: expected an integer, got float 2.5"
    ]
    assert campaign_problems("name: x\nconcurrency: 3000000000\n") == [
        "c.yaml:2: concurrency: 3000000000 is too large (at most 2147483647)"
    ]


def test_unknown_keys_are_errors_at_every_level() -> None:
    problems = campaign_problems("""\
        name: x
        concurency: 5
        window: {start: "09:00", tz: UTC}
        retry: {max_attempt: 2}
        redial: {stop_after: 20s}
        """)
    assert problems == [
        "c.yaml:2: concurency: unknown key (did you mean 'concurrency'?)",
        "c.yaml:3: window.tz: unknown key",
        "c.yaml:4: retry.max_attempt: unknown key (did you mean 'max_attempts'?)",
        "c.yaml:5: redial.stop_after: unknown key",
    ]


def test_name_is_required_and_must_not_look_like_an_id() -> None:
    assert campaign_problems("bot: renewals-bot\n") == ["c.yaml: name: missing required key"]
    assert campaign_problems("name: ''\n") == ["c.yaml:1: name: must not be empty"]
    problems = campaign_problems("name: 0b6f5d3e-8a4f-4c33-9b7e-2f1c7a9d2e10\n")
    assert problems == [
        "c.yaml:1: name: '0b6f5d3e-8a4f-4c33-9b7e-2f1c7a9d2e10' looks like an "
        "id; commands would read it as one"
    ]


def test_every_problem_is_reported_in_file_order() -> None:
    problems = campaign_problems("""\
        name: x
        retry:
          on_system: [no_answer, busy]
        concurrency: many
        bogus: 1
        """)
    assert problems == [
        "c.yaml:3: retry.on_system[1]: 'busy' is not one of no_answer, rejected, RNR, error, "
        "timeout, abandoned",
        "c.yaml:4: concurrency: expected an integer, got str 'many'",
        "c.yaml:5: bogus: unknown key",
    ]


def test_retry_values_the_database_refuses_in_every_state() -> None:
    problems = campaign_problems("""\
        name: x
        ring_timeout: 0
        retry:
          max_attempts: 0
          delay: -5
          on_system: [no_answer, no_answer]
          on_custom: [no_answer, completed, '', call_me, call_me]
        """)
    assert problems == [
        "c.yaml:2: ring_timeout: must be greater than 0, got 0",
        "c.yaml:4: retry.max_attempts: must be at least 1, got 0",
        "c.yaml:5: retry.delay: duration must not be negative, got -5",
        "c.yaml:6: retry.on_system[1]: 'no_answer' is listed twice",
        "c.yaml:7: retry.on_custom[0]: 'no_answer' is a system disposition; list it under "
        "retry.on_system",
        "c.yaml:7: retry.on_custom[1]: 'completed' is the bot's finished-conversation "
        "disposition, not a custom one; it never re-dials",
        "c.yaml:7: retry.on_custom[2]: must not be empty",
        "c.yaml:7: retry.on_custom[4]: 'call_me' is listed twice",
    ]


def test_durations_are_checked() -> None:
    problems = campaign_problems("""\
        name: x
        ring_timeout: 1.5
        retry: {delay: 400d}
        redial:
          stop_after_connect_longer_than: 20 s
          redial_after_connect_shorter_than: 5x
        """)
    assert problems == [
        "c.yaml:2: ring_timeout: expected a duration such as 90 or '1h30m', got float 1.5 "
        "(write a string with a unit, e.g. '1.5s')",
        "c.yaml:3: retry.delay: '400d' is too long (at most 365d)",
        "c.yaml:5: redial.stop_after_connect_longer_than: missing unit after '20' (use ms, s, m, "
        "h, d) in duration '20 s'",
        "c.yaml:6: redial.redial_after_connect_shorter_than: unknown unit 'x' (use ms, s, m, h, "
        "d) in duration '5x'",
    ]


def test_a_ring_timeout_below_a_millisecond_is_zero() -> None:
    assert campaign_problems("name: x\nring_timeout: 0.1ms\n") == [
        "c.yaml:2: ring_timeout: must be greater than 0, got '0.1ms'"
    ]


def test_bot_must_exist() -> None:
    assert campaign_problems("name: x\nbot: ghost\n") == [
        "c.yaml:2: bot: no bot named 'ghost' (known: renewals-bot; create one with "
        "`dialler bot create FILE`)"
    ]
    assert campaign_problems("name: x\nbot: ghost\n", bots=()) == [
        "c.yaml:2: bot: no bot named 'ghost' (known: none yet; create one with "
        "`dialler bot create FILE`)"
    ]


def test_numbers_must_be_configured_quoted_and_listed_once() -> None:
    problems = campaign_problems("""\
        name: x
        numbers:
          - "+441632960001"
          - +441632960002
          - "+441632960099"
          - "07700900123"
          - "+441632960001"
        """)
    assert problems == [
        "c.yaml:4: numbers[1]: expected a string, got int 441632960002 (put the value in quotes)",
        "c.yaml:5: numbers[2]: +441632960099 is not a configured number (configured: "
        "+441632960001, +441632960002, +441632960003)",
        "c.yaml:6: numbers[3]: '07700900123' is not an E.164 number ('+', then the country "
        "code and number)",
        "c.yaml:7: numbers[4]: +441632960001 is listed twice (first at numbers[0])",
    ]


def test_a_document_that_is_not_a_mapping() -> None:
    assert campaign_problems("- name: x\n") == [
        "c.yaml: expected a mapping of keys to values, got list"
    ]


def test_the_error_message_lists_every_problem_on_its_own_line() -> None:
    with pytest.raises(SpecError) as info:
        campaign("name: x\nconcurrency: a\nalways_on: 1\n")
    assert isinstance(info.value, InvalidInput)
    assert info.value.exit_code == 2
    assert str(info.value) == (
        "c.yaml: 2 problems:\n"
        "  - c.yaml:2: concurrency: expected an integer, got str 'a'\n"
        "  - c.yaml:3: always_on: expected true or false, got int 1"
    )
    with pytest.raises(SpecError) as info:
        campaign("name: x\nconcurrency: a\n")
    assert str(info.value) == "c.yaml:2: concurrency: expected an integer, got str 'a'"


# --- reading files ---------------------------------------------------------------------------


def test_read_document_reports_file_problems(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"missing\.yaml: file not found"):
        read_document(str(tmp_path / "missing.yaml"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"empty\.yaml: the file is empty"):
        read_document(str(empty))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\n")
    with pytest.raises(SpecError, match=r"not UTF-8 text"):
        read_document(str(binary))


def test_yaml_errors_have_a_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nname: y\n", encoding="utf-8")
    with pytest.raises(
        SpecError,
        match=r"line 2, column 1: invalid YAML: found duplicate "
        r"key 'name'",
    ):
        read_document(str(path))
    path.write_text("name: [x\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"c\.yaml: line \d+, column \d+: invalid YAML"):
        read_document(str(path))


def test_read_document_accepts_a_bom_and_json(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("\ufeff" + json.dumps({"name": "x", "concurrency": 2}), encoding="utf-8")
    spec = parse_campaign(read_document(str(path)))
    assert (spec.name, spec.concurrency) == ("x", 2)


# --- bots ------------------------------------------------------------------------------------


def test_bot_file() -> None:
    bot = parse_bot(
        doc(
            """\
        name: renewals-bot
        prompt: "Hello {{CustomerName}}, about your {{call.Plan}} plan."
        pipeline: {stt: deepgram, llm: gpt-4o, tts: eleven, options: {speed: 1.1, voices: [a]}}
        """,
            "bot.yaml",
        )
    )
    assert bot == BotSpec(
        name="renewals-bot",
        prompt="Hello {{CustomerName}}, about your {{call.Plan}} plan.",
        pipeline={
            "stt": "deepgram",
            "llm": "gpt-4o",
            "tts": "eleven",
            "options": {"speed": 1.1, "voices": ["a"]},
        },
    )
    assert parse_bot(doc("name: b\nprompt: hi\n")).pipeline == {}


def test_bot_problems() -> None:
    with pytest.raises(SpecError) as info:
        parse_bot(
            doc(
                """\
            name: 5
            pipeline:
              stt: deepgram
              when: 2024-01-01
              rate: .nan
            voice: x
            """,
                "bot.yaml",
            )
        )
    assert list(info.value.problems) == [
        "bot.yaml: prompt: missing required key",
        "bot.yaml:1: name: expected a string, got int 5",
        "bot.yaml:4: pipeline.when: expected JSON data (a string, number, boolean, null, list "
        "or mapping), got date",
        "bot.yaml:5: pipeline.rate: nan is not a JSON number",
        "bot.yaml:6: voice: unknown key",
    ]


# --- errors: fields, request bodies ----------------------------------------------------------


def test_spec_error_is_the_one_in_errors() -> None:
    assert SpecErrorHere is TheSpecError
    assert answer_for(TheSpecError(["x"], "c.yaml")).exit_code == 2


def test_the_error_carries_the_key_paths_in_the_order_of_the_problems() -> None:
    with pytest.raises(SpecError) as info:
        campaign("retry: {delay: 1x}\nconcurrency: a\n")
    assert info.value.fields == ("name", "retry.delay", "concurrency")
    assert info.value.field == "name"
    assert [problem.split(": ")[1] for problem in info.value.problems] == list(info.value.fields)


def test_a_request_body_names_fields_without_a_file_or_line() -> None:
    body = Document.request_body(
        {"name": "c", "concurrency": True, "retry": {"delay": "1x"}, "extra": 1}, "upload"
    )
    with pytest.raises(SpecError) as info:
        parse_campaign(body, bots=(), numbers=())
    assert list(info.value.problems) == [
        "extra: unknown key (did you mean 'retry'?)",
        "concurrency: expected an integer, got bool true",
        "retry.delay: unknown unit 'x' (use ms, s, m, h, d) in duration '1x'",
    ]
    assert info.value.fields == ("extra", "concurrency", "retry.delay")
    assert info.value.source == "upload"
    assert str(info.value).startswith("upload: 3 problems:\n  - extra: unknown key ")
    with pytest.raises(SpecError) as info:
        parse_bot(Document.request_body(["x"]))
    assert list(info.value.problems) == ["expected a mapping of keys to values, got list"]
    assert info.value.fields == ("",)


def test_system_dispositions_in_the_contract_order() -> None:
    assert system_dispositions() == (
        "no_answer",
        "rejected",
        "RNR",
        "error",
        "timeout",
        "abandoned",
    )
    assert set(system_dispositions()) == SYSTEM_DISPOSITIONS
    assert all(type(name) is str for name in system_dispositions())


def test_numbers_follow_the_one_e164_rule() -> None:
    # E.164 as domain.numbers defines it (and the database checks it): '+', no leading 0,
    # 2 to 15 digits.
    spec = campaign("name: x\nnumbers: ['+4412', '+123456789012345']\n", numbers=None)
    assert spec.numbers == ("+4412", "+123456789012345")
    assert campaign_problems(
        "name: x\nnumbers: ['+0441632960001', '+1234567890123456']\n", numbers=None
    ) == [
        "c.yaml:2: numbers[0]: '+0441632960001' is not an E.164 number ('+', then the country "
        "code and number)",
        "c.yaml:2: numbers[1]: '+1234567890123456' is not an E.164 number ('+', then the "
        "country code and number)",
    ]


# --- window.per_contact (CONTRACT, "Campaign window per contact") ----------------------------


def test_per_contact_windows_are_off_unless_asked_for() -> None:
    assert campaign("name: Renewals\n").window_per_contact is False
    spec = campaign(
        """\
        name: Renewals
        window: {start: "08:00", end: "21:00", timezone: America/New_York, per_contact: true}
        """
    )
    assert spec.window_per_contact is True
    assert spec.timezone == "America/New_York"  # the fallback for numbers of no known zone


def test_per_contact_must_be_a_boolean_named_with_its_path_and_line() -> None:
    problems = campaign_problems(
        """\
        name: Renewals
        window:
          per_contact: "yes"
        """
    )
    assert problems == ["c.yaml:3: window.per_contact: expected true or false, got str 'yes'"]
