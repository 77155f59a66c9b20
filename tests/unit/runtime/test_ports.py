import socket

from runtime.ports import web_port


def test_a_taken_metrics_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = web_port(port)
        assert other not in (port, 0)
    assert web_port(0) == 0  # 0 keeps the web server off
