"""gRPC server for the integration tests: generic handlers on raw bytes (no protoc, no stubs).

Service demo.v1.Greeter: Echo (unary, returns the request), Fail (unary, aborts NOT_FOUND),
Stream (server streaming, three replies), Collect (client streaming, joins the requests).
Usage: python3 server.py PORT  (prints "ready" once listening).
"""
import sys
from concurrent import futures

import grpc


def echo(request, context):
    return request


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such greeting")


def stream(request, context):
    for i in range(3):
        yield request + bytes([48 + i])


def collect(request_iterator, context):
    return b"".join(request_iterator)


def main():
    port = int(sys.argv[1])
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("demo.v1.Greeter", handlers),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
