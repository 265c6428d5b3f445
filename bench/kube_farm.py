"""Kubernetes API servers for the benchmarks, in a process of their own.

Run by `bench.common.KubeFarm`, not by hand. Serves `servers` kmock emulators from
tests/kube.py (each in its own thread and event loop, as in the tests) plus one "black
hole": a TCP server on 127.0.0.1 that accepts connections and never answers.

Protocol on stdin/stdout, one JSON document per line:
  in : {"servers": 4, "markers": [[server_index, provider_name, namespace], ...], "tls": false}
  out: {"urls": [...], "black_hole": "http://127.0.0.1:PORT", "cas": [CA PEM or null, ...]}
       (with "tls": true the servers serve HTTPS, each with its own CA, and the black
       hole's address is https:// too: a client waits for a TLS handshake that never comes)
  in : "cpu"   -> out: {"cpu": seconds of CPU used by this process so far}
  in : {"deploy": [server_index, owner_name, namespace]} -> out: {"ok": true}
       (the marker of `owner_name` in that namespace: another provider's marker makes the
       namespace's own provider fail its checks with marker_conflict; its own heals it)
  in : "stop" (or end of input) -> the servers stop and the process exits.

A separate process keeps the emulators' Python work off the GIL of the process being
measured, as a real cluster would be; on a 2-core machine they share the cores still.
"""
import asyncio
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def lean_emulator_class():
    """tests.kube's emulator, but forgetting each request once it is answered.

    kmock keeps every request it has served (for test assertions) and matches each new
    request against its reactions by scanning that whole history, so its cost per request
    grows with the number served: measured here, one emulator fell from ~240 to ~17
    requests/s within a few hundred requests. A benchmark serving tens of thousands of
    requests would measure that, not the app. Only requests already answered are dropped
    (by identity), so the in-flight ones still match.
    """
    from tests import kube

    class LeanEmulator(kube._Emulator):
        async def _handle(self, request):
            try:
                return await super()._handle(request)
            finally:
                _forget(self._requests, request)
                for payload in self._payloads:
                    _forget(getattr(payload, "_requests", []), request)

    return LeanEmulator


def _forget(requests: list, request) -> None:
    for index in range(len(requests) - 1, -1, -1):
        if requests[index] is request:
            del requests[index]
            return


class BlackHole:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte."""

    def __init__(self):
        self.port = None
        self._ready = threading.Event()
        self._loop = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="black-hole")

    def start(self) -> "BlackHole":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the black hole server did not start")
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._swallow, "127.0.0.1", 0, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _swallow(self, reader, writer) -> None:
        try:
            while await reader.read(65536):
                pass  # read the request, never answer
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


def main() -> None:
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)
    from tests import kube

    kube._Emulator = lean_emulator_class()  # KubeAPI._main looks the class up at start
    spec = json.loads(sys.stdin.readline())
    apis = []
    hole = BlackHole().start()
    try:
        tls = bool(spec.get("tls"))
        for _ in range(int(spec["servers"])):
            apis.append(kube.KubeAPI(tls=tls).__enter__())
        for index, provider, namespace in spec.get("markers", []):
            apis[index].deploy_marker(provider, namespace)
        print(json.dumps({"urls": [api.url for api in apis], "cas": [api.ca_pem for api in apis],
                          "black_hole": f"{'https' if tls else 'http'}://127.0.0.1:{hole.port}"}),
              flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "cpu":
                print(json.dumps({"cpu": time.process_time()}), flush=True)
            elif command.startswith("{"):
                index, owner, namespace = json.loads(command)["deploy"]
                apis[index].deploy_marker(owner, namespace)
                print(json.dumps({"ok": True}), flush=True)
            elif command == "stop":
                break
    finally:
        for api in apis:
            api.__exit__(None, None, None)
        hole.stop()


if __name__ == "__main__":
    main()
