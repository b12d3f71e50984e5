"""`pgx-loop serve --admin-port`: the operator endpoints move to their own port; the EHR's port keeps the CDS API."""

from __future__ import annotations

import httpx
from click.testing import CliRunner

from pgx_loop.cli import main as cli
from tests.live_server import LiveServer, free_port

OPERATOR = ("/status/rules", "/status/strengths", "/metrics", "/docs", "/openapi.json", "/reports/")


def test_operator_endpoints_answer_only_on_the_admin_port(tmp_path):
    admin_port = free_port()
    server = LiveServer(tmp_path / "var", workers=2, args=("--admin-port", str(admin_port)))
    assert server.port != admin_port  # two free ports asked one after the other
    admin = httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=30)
    public = httpx.Client(base_url=server.base, timeout=30)
    with server, admin, public:
        for path in OPERATOR:
            refused = public.get(path, headers={"Host": f"127.0.0.1:{admin_port}"})
            assert refused.status_code == 404, path  # the Host header does not choose the port
            assert "not served on this port" in refused.text
        assert admin.get("/status/rules").json()["rules"] > 0
        assert "pgx_loop_" in admin.get("/metrics").text
        assert admin.get("/openapi.json").status_code == 200
        for path in ("/healthz", "/readyz", "/cds-services"):  # the load balancer's probes and the EHR's API
            assert public.get(path).status_code == 200, path
    assert '"reason":"operator_endpoint_on_service_port"' in server.output()


def test_without_an_admin_port_everything_is_on_one_port(client):
    for path in ("/status/rules", "/status/strengths", "/metrics", "/docs", "/openapi.json", "/cds-services"):
        assert client.get(path).status_code == 200, path


def test_the_admin_port_must_differ_from_the_port(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", "--admin-port", "8123"])
    assert result.exit_code == 2 and "must differ from --port" in result.output
