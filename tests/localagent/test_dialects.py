"""The local agent's dialect interface: one Dialect class per CLI name, each seeing the agent
only through a DialectContext, driven here without any server running."""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from edgevoice.localagent.arguments import DIALECT_NAMES
from edgevoice.localagent.context import DialectContext
from edgevoice.localagent.dialect import Dialect, Handshake, HandshakeRefused, RestAnswer, RestRequest
from edgevoice.localagent.options import AgentOptions
from edgevoice.localagent.registry import DIALECTS, dialect_class
from edgevoice.localagent.session import Session
from edgevoice.localagent.xuna import SIGNED_URL_PATH, XunaDialect

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "edgevoice" / "localagent"


class FakeConnection:
    """Stands in for a websockets ServerConnection where only ``respond`` is used."""

    def respond(self, status: int, text: str) -> tuple[int, str]:
        return status, text


def make_dialect(name: str, **options) -> Dialect:
    return dialect_class(name)(DialectContext(AgentOptions(**options)))


def test_every_cli_dialect_name_has_exactly_one_dialect_class():
    assert sorted(DIALECTS) == sorted(DIALECT_NAMES)
    for name in DIALECTS:
        cls = dialect_class(name)
        assert issubclass(cls, Dialect) and cls.name == name
    with pytest.raises(ValueError, match="unknown dialect 'nosuch'"):
        dialect_class("nosuch")


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_each_dialect_implements_the_interface(name):
    dialect = make_dialect(name)  # an abstract method left out would raise TypeError here
    assert dialect.ws_path.startswith("/")
    assert issubclass(dialect.session_class, Session)
    assert dialect.options.agent_id == dialect.default_agent_id  # filled in by the dialect
    section = dialect.config_section()
    assert section and all(isinstance(k, str) and isinstance(v, str) for k, v in section.items())
    assert dialect.rest_route(RestRequest("GET", "/no/such/path", {}, {})) is None


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_the_context_is_all_a_dialect_and_its_sessions_receive(name):
    cls = dialect_class(name)
    assert list(inspect.signature(cls.__init__).parameters) == ["self", "context"]
    assert list(inspect.signature(cls.session_class.__init__).parameters) == [
        "self", "context", "connection", "auth"]
    context = DialectContext(AgentOptions())
    dialect = cls(context)
    connection = FakeConnection()
    session = dialect.open_session(connection)
    assert session.context is context and session.connection is connection
    assert session.options is context.options


#: what the local agent may import of the daemon's package: constants, no code
SHARED_WITH_THE_DAEMON = ("edgevoice.dialect_names",)


def test_no_module_of_the_local_agent_imports_the_server_or_the_daemon():
    """Dialects are typed against the context, not the server; and the local agent shares
    nothing with the daemon but the dialect names (design: "Boundaries worth keeping")."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert (node.level > 0 or not module.startswith("edgevoice")
                        or module in SHARED_WITH_THE_DAEMON), (path.name, module)
                if path.name not in ("server.py", "cli.py", "__init__.py"):
                    assert module != "server", f"{path.name} imports the server"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("edgevoice") for a in node.names), path.name


def test_optional_hooks_have_defaults_on_the_base_class():
    navtalk, voiceapi = make_dialect("navtalk"), make_dialect("voiceapi")
    assert type(navtalk).rest_route is Dialect.rest_route  # no REST at all
    assert navtalk.rest_route(RestRequest("POST", "/api/v1/sdk/token", {}, {})) is None
    assert type(voiceapi).authorize_handshake is Dialect.authorize_handshake  # auth is in-band
    assert voiceapi.authorize_handshake(Handshake("/ws", {}, {})) == {}
    make_dialect("xuna").check_options(AgentOptions())  # the default accepts anything


def test_a_dialect_refuses_options_it_cannot_honour_when_made():
    with pytest.raises(ValueError, match="napster_audio_form"):
        make_dialect("napster", napster_audio_form="nosuch")


def test_xuna_signed_url_then_handshake_through_the_interface_alone():
    context = DialectContext(AgentOptions(), ws_port=4321)
    dialect = XunaDialect(context)
    headers = {"xi-api-key": context.options.api_key}
    answer = dialect.rest_route(RestRequest("GET", SIGNED_URL_PATH, {"agent_id": "local-agent"}, headers))
    assert isinstance(answer, RestAnswer) and answer.status == 200
    signed_url = answer.body["signed_url"]
    assert signed_url.startswith("ws://127.0.0.1:4321/v1/convai/conversation?token=")
    assert context.events.count("http_signed_url") == 1

    token = signed_url.split("token=")[1]
    handshake = Handshake("/v1/convai/conversation", {"token": token}, {})
    assert dialect.authorize_handshake(handshake) == {"auth": "signed", "token": token}
    with pytest.raises(HandshakeRefused) as refused:
        dialect.authorize_handshake(handshake)  # single use
    assert (refused.value.status, refused.value.reason) == (403, "token_used")

    wrong_key = RestRequest("GET", SIGNED_URL_PATH, {"agent_id": "local-agent"}, {"xi-api-key": "nope"})
    assert dialect.rest_route(wrong_key).status == 401
    assert context.events.matching("auth_rejected")[0].data == {"where": "rest", "reason": "bad_api_key"}


def test_the_base_class_judges_path_and_reject_auth_before_the_dialect():
    context = DialectContext(AgentOptions())
    dialect = XunaDialect(context)
    connection = FakeConnection()

    def handshake(path: str):
        return dialect.process_request(connection, Request(path, Headers()))

    assert handshake("/elsewhere") == (404, "Not Found\n")
    assert context.events.matching("ws_bad_path")[0].data == {"path": "/elsewhere"}
    assert handshake("/v1/convai/conversation?agent_id=someone") == (403, "Forbidden\n")
    context.options.reject_auth = True
    assert handshake("/v1/convai/conversation?agent_id=local-agent") == (403, "Forbidden\n")
    reasons = [e.data["reason"] for e in context.events.matching("auth_rejected")]
    assert reasons == ["unknown_agent_id", "reject_auth"]
    context.options.reject_auth = False
    assert handshake("/v1/convai/conversation?agent_id=local-agent") is None
    assert dialect.open_session(connection).auth == {"auth": "public"}
