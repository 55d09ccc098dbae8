"""The store's certificate tables, on SQLite and PostgreSQL: lease, ledger, rows, installs."""

from __future__ import annotations

from owncdn.control.store import Store


def test_lease_is_exclusive_until_it_expires_or_is_released(store, store_url, clock):
    other = Store(store_url, clock=clock.time)  # a second control-plane replica on the same database
    try:
        assert store.acquire_lock("order:a.example.com", "replica-1", ttl=30)
        assert not other.acquire_lock("order:a.example.com", "replica-2", ttl=30)
        assert store.acquire_lock("order:a.example.com", "replica-1", ttl=30)  # the holder extends it
        assert other.acquire_lock("order:b.example.com", "replica-2", ttl=30)  # other names are free
        clock.advance(31)
        assert other.acquire_lock("order:a.example.com", "replica-2", ttl=30)  # expired: a dead holder loses it
        other.release_lock("order:a.example.com", "replica-2")
        assert store.acquire_lock("order:a.example.com", "replica-1", ttl=30)
        store.release_lock("order:a.example.com", "replica-2")  # not the holder: nothing happens
        assert not other.acquire_lock("order:a.example.com", "replica-2", ttl=30)
    finally:
        other.close()


def test_ledger_counts_orders_per_domain_and_directory(store, clock):
    store.record_order("a@p", ["example.com"], ["a.example.com"], "https://ca/dir")
    clock.advance(10)
    store.record_order("b@p", ["example.com", "example.org"], ["b.example.com", "b.example.org"], "https://ca/dir")
    store.record_order("c@p", ["example.com"], ["c.example.com"], "https://other/dir")
    since = store.orders_since(["example.com", "example.org"], clock.time() - 100, "https://ca/dir")
    assert len(since["example.com"]) == 2 and len(since["example.org"]) == 1
    assert store.orders_since(["example.com"], clock.time() - 5, "https://ca/dir") == {"example.com": [clock.time()]}
    assert store.order_count() == 3 and store.order_count("b@p") == 1


def test_certificate_rows_keep_the_key_out_of_listings(store):
    store.want_cert("blog@p", "p", ["www.example.com", "example.com"], "dns-01", "https://ca/dir")
    pending = store.get_cert("blog@p")
    assert not pending.issued and pending.names == ("example.com", "www.example.com")
    store.store_cert("blog@p", names=pending.names, cert_pem="CHAIN", key_pem="plain:KEY", fingerprint="f1",
                     issuer="CN=ca", not_before=0.0, not_after=100.0, renew_at=66.0, env="p",
                     challenge="dns-01", directory="https://ca/dir")
    listed = store.list_certs()
    assert listed[0].issued and listed[0].key_pem == "" and "KEY" not in repr(listed[0])
    assert store.get_cert("blog@p", with_key=True).key_pem == "plain:KEY"
    assert [c.id for c in store.list_certs(env="other")] == []
    failed = store.cert_failed("blog@p", "boom", next_attempt=500.0)
    assert failed.failures == 1 and failed.last_error == "boom" and failed.next_attempt == 500.0
    assert store.update_cert("blog@p", force_renew=True).force_renew
    assert store.delete_cert("blog@p") and store.get_cert("blog@p") is None


def test_installs_and_challenges(store):
    node = store.register_node("edge-1", "edge", "fra", "p", "127.0.0.1:1")
    store.set_node_certs(node.id, {"a": "fa", "b": "fb"})
    store.set_node_certs(node.id, {"a": "fa2"})
    assert store.cert_installs() == {"a": {node.id: "fa2"}}
    store.add_challenges("a", [("dns", "_acme-challenge.a.example.com", "v1"),
                               ("dns", "_acme-challenge.a.example.com", "v2"), ("http", "tok", "tok.thumb")])
    assert store.challenges("dns") == {"_acme-challenge.a.example.com": ["v1", "v2"]}
    assert store.challenges("http") == {"tok": ["tok.thumb"]}
    store.remove_challenges("a")
    assert store.challenges("dns") == {} and store.challenges("http") == {}
    store.delete_node(node.id)
    assert store.cert_installs() == {}


def test_one_account_per_directory_first_writer_wins(store):
    assert store.acme_account("https://ca/dir") is None
    assert store.save_acme_account("https://ca/dir", "plain:K1", "") == ("plain:K1", "")
    assert store.save_acme_account("https://ca/dir", "plain:K2", "https://ca/acct/1") == ("plain:K1", "https://ca/acct/1")
    assert store.acme_account("https://ca/dir") == ("plain:K1", "https://ca/acct/1")
