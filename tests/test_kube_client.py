"""The client cache: no retries, reuse per connection, bounded and thread-safe."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from provider_admin.kube import Connection
from provider_admin.kube.client import ClientCache, ClientConfigError, build_client, request_timeout

CONN = Connection(server="https://k8s.example.com:6443", namespace="ws", token="t1")


def test_clients_are_built_without_retries():
    api = build_client(CONN)

    retries = api.configuration.retries
    assert (retries.total, retries.connect, retries.read) == (0, None, None)
    assert api.rest_client.pool_manager.connection_pool_kw["retries"] is retries
    assert api.configuration.verify_ssl is True
    assert api.configuration.api_key == {"BearerToken": "t1"}
    assert request_timeout(5.0) == (5.0, 5.0)
    api.close()


def test_same_connection_reuses_the_client_and_a_changed_one_gets_a_new_one():
    cache = ClientCache()

    first = cache.get(CONN)
    again = cache.get(Connection(**CONN.__dict__))
    rotated = cache.get(Connection(**{**CONN.__dict__, "token": "t2"}))

    assert first is again
    assert rotated is not first
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_cache_is_bounded_and_closes_evicted_clients():
    cache = ClientCache(maxsize=2)
    closed = []
    clients = []
    for i in range(3):
        api = cache.get(Connection(**{**CONN.__dict__, "token": f"t{i}"}))
        api.close = lambda api=api: closed.append(api)
        clients.append(api)

    assert len(cache) == 2
    assert closed == [clients[0]]
    cache.clear()
    assert closed == clients


def test_cache_is_thread_safe():
    cache = ClientCache()

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: cache.get(CONN), range(32)))

    assert len({id(c) for c in clients}) == 1
    assert len(cache) == 1
    cache.clear()


def test_bad_client_certificate_is_a_clear_error():
    conn = Connection(server="https://k8s.example.com", namespace="ws",
                      client_cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                      client_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")

    with pytest.raises(ClientConfigError, match="client certificate or key cannot be loaded"):
        build_client(conn)
