"""HTTP answers become the domain error a user can act on, with one clear sentence (errors.py)."""

from __future__ import annotations

import json
import traceback

import pytest

from triverse_addon.service import errors, http_errors
from triverse_addon.service.http_errors import Asked, error_for, parse_service_answer

TASK = "92483a80-236c-4889-9a95-4c90bb64dfd8"
HOST = "api.triverse.ai"
JSON = {"Content-Type": "application/json"}
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    b"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def body(code: int, message: str, suggestion: str = "") -> bytes:
    """The service's documented error body."""
    return json.dumps({"code": code, "message": message, "suggestion": suggestion}).encode()


def assert_sentence(text: str) -> None:
    """One line a user can read: no traceback, no markup, no raw JSON, no mojibake."""
    assert text and text == text.strip()
    assert "\n" not in text and "\r" not in text
    assert "Traceback" not in text and 'File "' not in text
    assert "<html" not in text.lower() and "<body" not in text.lower() and "<title" not in text.lower()
    assert "{" not in text and "[{" not in text
    assert "\ufffd" not in text and text.isprintable()
    assert text[0].isupper() or text.startswith(HOST), text
    assert text.endswith((".", ")")), text


def err(status: int, raw: bytes = b"", headers: dict[str, str] | None = None) -> errors.TriverseError:
    return error_for(status, headers if headers is not None else JSON, raw, HOST, Asked(task_uuid=TASK))


# -- one row per answer ------------------------------------------------------------------------


def test_401_is_authentication_failed_pointing_at_the_preferences() -> None:
    e = err(401, body(1001, "Invalid API key"))
    assert type(e) is errors.AuthenticationFailed
    assert "API key" in str(e) and "Preferences" in str(e) and "TRIVERSE_API_KEY" in str(e)
    assert_sentence(str(e))


def test_403_with_code_2010_speaks_of_credits() -> None:
    e = err(403, body(2010, "Insufficient credits", "Top up"))
    assert type(e) is errors.InsufficientCredits
    assert "credits" in str(e)
    assert_sentence(str(e))


def test_other_403_speaks_of_the_account_not_credits() -> None:
    e = err(403, body(1005, "No permission"))
    assert type(e) is errors.AccessDenied
    assert "credits" not in str(e)
    assert "account" in str(e) and TASK[:8] in str(e)
    assert "No permission" in str(e)  # the service's own words come along
    assert_sentence(str(e))


def test_403_from_a_proxy_page_shows_no_markup() -> None:
    e = err(403, b"<html><body><h1>403 Forbidden</h1></body></html>", {"Content-Type": "text/html"})
    assert type(e) is errors.AccessDenied
    assert_sentence(str(e))


def test_404_code_1006_is_task_not_found_with_the_full_uuid() -> None:
    e = err(404, body(1006, "Task not found"))
    assert type(e) is errors.TaskNotFound
    assert TASK in str(e)
    assert_sentence(str(e))


def test_404_without_a_body_is_task_not_found() -> None:
    assert type(err(404, b"", {})) is errors.TaskNotFound


def test_404_code_4042_is_no_asset() -> None:
    e = err(404, body(4042, "Task succeeded but has no assets"))
    assert type(e) is errors.NoAsset
    assert not isinstance(e, errors.TaskNotFound)
    assert TASK[:8] in str(e)
    assert_sentence(str(e))


def test_409_is_task_not_ready() -> None:
    e = err(409, body(2005, "Task is RUNNING"))
    assert type(e) is errors.TaskNotReady
    assert "not finished" in str(e)
    assert_sentence(str(e))


def test_410_is_asset_expired() -> None:
    e = err(410, json.dumps({"detail": "Asset expired"}).encode())
    assert type(e) is errors.AssetExpired
    assert "expired" in str(e) and TASK[:8] in str(e)
    assert_sentence(str(e))


def test_429_is_service_busy() -> None:
    e = err(429, body(2000, "Rate limit exceeded"), {**JSON, "Retry-After": "3"})
    assert type(e) is errors.ServiceBusy
    assert "busy" in str(e)
    assert_sentence(str(e))


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_are_service_busy(status: int) -> None:
    e = err(status, NGINX_502, {"Content-Type": "text/html"})
    assert type(e) is errors.ServiceBusy
    assert str(status) in str(e) and "temporarily unavailable" in str(e)
    assert_sentence(str(e))


def test_500_includes_the_service_message() -> None:
    e = err(500, body(5005, "Persistence error", "Retry later."))
    assert type(e) is errors.ServerError
    assert "Persistence error" in str(e) and "500" in str(e)
    assert_sentence(str(e))


def test_500_with_detail_includes_it() -> None:
    e = err(500, json.dumps({"detail": "Database is down."}).encode())
    assert type(e) is errors.ServerError
    assert "Database is down" in str(e)
    assert_sentence(str(e))


def test_other_4xx_is_unexpected_response_naming_the_host() -> None:
    e = err(418, body(1004, "Invalid parameters"))
    assert type(e) is errors.UnexpectedResponse
    assert HOST in str(e) and "418" in str(e) and "Invalid parameters" in str(e)
    assert_sentence(str(e))


# -- bodies that are not the service's JSON --------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html", ""])
def test_html_from_a_proxy_is_never_shown(content_type: str) -> None:
    e = err(500, NGINX_502, {"Content-Type": content_type})
    assert type(e) is errors.ServerError
    assert "nginx" not in str(e) and "Bad Gateway" not in str(e)
    assert_sentence(str(e))


def test_html_answer_to_an_unknown_status_says_web_page() -> None:
    e = err(400, b"<!DOCTYPE html><html><body>Sign in</body></html>", {"Content-Type": "text/html"})
    assert type(e) is errors.UnexpectedResponse
    assert "web page" in str(e)
    assert_sentence(str(e))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n ",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\xff\xfe\xfd\xfc",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
        bytes(range(256)),
        b"\x00" * 100,
    ],
    ids=["empty", "blank", "png", "high-bytes", "gzip", "all-bytes", "nul"],
)
def test_binary_or_empty_bodies_leave_no_garbage_in_the_message(raw: bytes) -> None:
    e = err(500, raw, {"Content-Type": "application/octet-stream"})
    assert type(e) is errors.ServerError
    assert str(e).startswith("Triverse failed on its side (HTTP 500)")
    assert "Triverse said" not in str(e)
    assert_sentence(str(e))


def test_plain_text_body_is_quoted() -> None:
    e = err(500, b"upstream connect error\nreset reason: overflow", {"Content-Type": "text/plain"})
    assert "upstream connect error" in str(e) and "overflow" not in str(e)
    assert_sentence(str(e))


def test_json_that_is_not_an_object() -> None:
    e = err(500, b'["a", "b"]')
    assert type(e) is errors.ServerError
    assert_sentence(str(e))


def test_a_huge_message_is_cut() -> None:
    e = err(500, body(5005, "x" * 10_000))
    assert len(str(e)) < 600
    assert_sentence(str(e))


# -- parse_service_answer --------------------------------------------------------------------------


def test_parse_documented_shape() -> None:
    a = parse_service_answer(body(2010, "Insufficient credits", "Top up your credits."), "application/json")
    assert a == http_errors.ServiceAnswer(2010, "Insufficient credits", "Top up your credits.", "json")


def test_parse_detail_string() -> None:
    a = parse_service_answer(b'{"detail": "Not authenticated"}', "application/json")
    assert (a.code, a.message, a.kind) == (None, "Not authenticated", "json")


def test_parse_detail_list_reads_the_messages_not_a_python_repr() -> None:
    raw = json.dumps(
        {"detail": [{"loc": ["path", "task_uuid"], "msg": "value is not a valid uuid", "type": "type_error.uuid"}]}
    ).encode()
    a = parse_service_answer(raw, "application/json")
    assert "value is not a valid uuid" in a.message
    assert "loc" not in a.message and "{" not in a.message and "[" not in a.message


def test_parse_nested_error_object() -> None:
    a = parse_service_answer(b'{"error": {"message": "Quota exceeded"}}')
    assert a.message == "Quota exceeded"


@pytest.mark.parametrize("code", ["2010", True, 2.5, None])
def test_parse_ignores_a_code_that_is_not_an_integer(code: object) -> None:
    a = parse_service_answer(json.dumps({"code": code, "message": "m"}).encode())
    assert a.code is None
    # A string "2010" must not be taken for the credits code.
    assert "credits" not in str(err(403, json.dumps({"code": code}).encode()))


def test_parse_html_by_content_type_or_by_sniffing() -> None:
    assert parse_service_answer(b"<p>hi</p>", "text/html; charset=utf-8").kind == "html"
    assert parse_service_answer(b"  <!DOCTYPE HTML><html></html>", "").kind == "html"
    assert parse_service_answer(b"<html><body>x</body></html>", "application/octet-stream").kind == "html"


def test_parse_empty() -> None:
    assert parse_service_answer(b"") == http_errors.ServiceAnswer()


# -- describe --------------------------------------------------------------------------------------


def test_describe_a_domain_error_is_its_message() -> None:
    assert errors.describe(errors.TaskNotFound("No such task.")) == "No such task."


def test_describe_never_returns_a_traceback() -> None:
    def boom() -> None:
        raise KeyError("format")

    try:
        boom()
    except KeyError as exc:
        text = errors.describe(exc)
        formatted = "".join(traceback.format_exception(exc))
    assert "Traceback" in formatted  # what must not reach the user
    assert "KeyError" in text and "format" in text
    assert "console" in text
    assert_sentence(text)


def test_describe_an_exception_whose_text_is_a_traceback() -> None:
    exc = RuntimeError('first line\nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n')
    text = errors.describe(exc)
    assert "first line" in text
    assert "Traceback" not in text and 'File "' not in text and "\n" not in text


def test_describe_an_exception_without_text() -> None:
    text = errors.describe(ValueError())
    assert "ValueError" in text
    assert_sentence(text)


def test_every_error_is_a_triverse_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.TriverseError), name
            assert obj.__doc__, name


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "?"), (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1_500_000, "1.5 MB"), (3 * 10**12, "3000.0 GB")],
)
def test_human_size(n: int | None, text: str) -> None:
    assert errors.human_size(n) == text
