"""gRPC client for the integration tests: calls every method of demo.v1.Greeter once or twice
on one channel and checks the answers. Usage: python3 client.py PORT. Exit 0 when all matched.
"""
import sys

import grpc


def main():
    port = int(sys.argv[1])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        echo = ch.unary_unary("/demo.v1.Greeter/Echo")
        assert echo(b"hello", timeout=10) == b"hello"
        assert echo(b"again", timeout=10) == b"again"
        try:
            ch.unary_unary("/demo.v1.Greeter/Fail")(b"x", timeout=10)
            raise SystemExit("Fail did not fail")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
        replies = list(ch.unary_stream("/demo.v1.Greeter/Stream")(b"r", timeout=10))
        assert replies == [b"r0", b"r1", b"r2"], replies
        joined = ch.stream_unary("/demo.v1.Greeter/Collect")(iter([b"a", b"b", b"c"]), timeout=10)
        assert joined == b"abc", joined
    print("ok", flush=True)


if __name__ == "__main__":
    main()
