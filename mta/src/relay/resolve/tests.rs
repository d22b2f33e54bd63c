//! Resolver tests against a private dnsmasq (see `dnsmasq.rs`) or stub servers on 127.0.0.1;
//! nothing here touches the network or the machine's resolver.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::dnsmasq::{Servfail, Zone};
use super::*;

/// A port no real MTA uses, so the tests show that `mx_port` is applied.
const MX_PORT: u16 = 2525;

fn settings(server: SocketAddr) -> ResolverSettings {
    ResolverSettings { nameservers: vec![server], timeout: Duration::from_secs(2), attempts: 2, mx_port: MX_PORT }
}

fn resolver(server: SocketAddr) -> Resolver {
    Resolver::new(&settings(server)).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn names(dest: &Destination) -> Vec<&str> {
    dest.hosts.iter().map(|h| h.name.as_str()).collect()
}

#[tokio::test]
async fn mx_hosts_sorted_by_preference_with_mx_port() {
    let dns = Zone::new()
        .mx("pref.test", "mx30.pref.test", 30)
        .mx("pref.test", "mx10.pref.test", 10)
        .mx("pref.test", "mx20.pref.test", 20)
        .host("mx10.pref.test", &["192.0.2.10"])
        .host("mx20.pref.test", &["192.0.2.20"])
        .host("mx30.pref.test", &["192.0.2.30"])
        .start();
    let dest = resolver(dns.addr()).destination("Pref.Test").await.unwrap();
    assert!(!dest.implicit);
    assert_eq!(names(&dest), ["mx10.pref.test", "mx20.pref.test", "mx30.pref.test"]);
    assert_eq!(dest.hosts.iter().map(|h| h.preference).collect::<Vec<_>>(), [10, 20, 30]);
    assert_eq!(dest.hosts[0].addrs, [addr("192.0.2.10:2525")]);
    assert_eq!(dest.hosts[2].addrs, [addr("192.0.2.30:2525")]);
}

#[tokio::test]
async fn equal_preference_hosts_all_present_and_shuffled() {
    let dns = Zone::new()
        .mx("equal.test", "a.equal.test", 10)
        .mx("equal.test", "b.equal.test", 10)
        .mx("equal.test", "backup.equal.test", 20)
        .host("a.equal.test", &["192.0.2.1"])
        .host("b.equal.test", &["192.0.2.2"])
        .host("backup.equal.test", &["192.0.2.3"])
        .start();
    let resolver = resolver(dns.addr());
    let mut a_first = 0;
    // Each call reshuffles (the answers come from the cache after the first); 64 calls all in
    // one order would happen once in 2^63 runs.
    for _ in 0..64 {
        let dest = resolver.destination("equal.test").await.unwrap();
        let names = names(&dest);
        assert_eq!(names.len(), 3);
        assert!(names[..2].contains(&"a.equal.test") && names[..2].contains(&"b.equal.test"), "{names:?}");
        assert_eq!(names[2], "backup.equal.test");
        a_first += usize::from(names[0] == "a.equal.test");
    }
    assert!(a_first > 0 && a_first < 64, "equal-preference hosts never swapped: {a_first}/64");
}

#[tokio::test]
async fn mx_host_without_address_is_skipped() {
    let dns = Zone::new()
        .mx("skip.test", "gone.skip.test", 5)
        .mx("skip.test", "empty.skip.test", 6)
        .mx("skip.test", "mx.skip.test", 10)
        .exists("empty.skip.test")
        .host("mx.skip.test", &["192.0.2.7"])
        .start();
    let dest = resolver(dns.addr()).destination("skip.test").await.unwrap();
    assert_eq!(names(&dest), ["mx.skip.test"]);
    assert_eq!(dest.hosts[0].preference, 10);
}

#[tokio::test]
async fn mx_host_behind_cname_resolves() {
    // RFC 5321 §5.1 says an MX exchange should not be an alias; senders follow it anyway.
    let dns = Zone::new()
        .mx("alias.test", "mail.alias.test", 10)
        .cname("mail.alias.test", "real.alias.test")
        .host("real.alias.test", &["192.0.2.44"])
        .start();
    let dest = resolver(dns.addr()).destination("alias.test").await.unwrap();
    assert_eq!(names(&dest), ["mail.alias.test"]);
    assert_eq!(dest.hosts[0].addrs, [addr("192.0.2.44:2525")]);
}

#[tokio::test]
async fn no_mx_host_with_address_is_permanent_5_4_4() {
    let dns = Zone::new()
        .mx("noroute.test", "gone.noroute.test", 5)
        .mx("noroute.test", "empty.noroute.test", 10)
        .exists("empty.noroute.test")
        .start();
    let err = resolver(dns.addr()).destination("noroute.test").await.unwrap_err();
    assert!(matches!(&err, ResolveError::Unroutable { hosts, .. } if hosts.len() == 2), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(err.status(), "5.4.4");
    assert!(err.to_string().contains("gone.noroute.test: does not exist"), "{err}");
}

#[tokio::test]
async fn mx_hosts_failing_transiently_make_a_transient_error() {
    let broken = Servfail::start().await;
    let dns = Zone::new()
        .mx("flaky.test", "mx.broken.test", 10)
        .mx("flaky.test", "gone.flaky.test", 20)
        .forward("broken.test", broken.addr())
        .start();
    let err = resolver(dns.addr()).destination("flaky.test").await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status(), "4.4.3");
    assert!(err.to_string().contains("mx.broken.test"), "{err}");
}

#[tokio::test]
async fn mx_host_failing_transiently_is_skipped_when_another_resolves() {
    let broken = Servfail::start().await;
    let dns = Zone::new()
        .mx("half.test", "mx.broken.test", 10)
        .mx("half.test", "mx.half.test", 20)
        .host("mx.half.test", &["192.0.2.20"])
        .forward("broken.test", broken.addr())
        .start();
    let dest = resolver(dns.addr()).destination("half.test").await.unwrap();
    assert_eq!(names(&dest), ["mx.half.test"]);
}

#[tokio::test]
async fn implicit_mx_uses_the_domain_addresses() {
    let dns = Zone::new().host("implicit.test", &["192.0.2.9", "2001:db8::9"]).start();
    let dest = resolver(dns.addr()).destination("implicit.test").await.unwrap();
    assert!(dest.implicit);
    assert_eq!(dest.hosts.len(), 1);
    let host = &dest.hosts[0];
    assert_eq!((host.name.as_str(), host.preference), ("implicit.test", 0));
    assert_eq!(host.addrs, [addr("192.0.2.9:2525"), addr("[2001:db8::9]:2525")]);
}

#[tokio::test]
async fn aaaa_addresses_are_included() {
    let dns = Zone::new()
        .mx("six.test", "dual.six.test", 10)
        .mx("six.test", "only6.six.test", 20)
        .host("dual.six.test", &["192.0.2.1", "192.0.2.2", "2001:db8::1"])
        .host("only6.six.test", &["2001:db8::6"])
        .start();
    let dest = resolver(dns.addr()).destination("six.test").await.unwrap();
    let mut dual = dest.hosts[0].addrs.clone();
    // dnsmasq rotates equal records; only the families' order is ours.
    assert!(dual[2].is_ipv6(), "{dual:?}");
    dual.sort();
    assert_eq!(dual, [addr("192.0.2.1:2525"), addr("192.0.2.2:2525"), addr("[2001:db8::1]:2525")]);
    assert_eq!(dest.hosts[1].addrs, [addr("[2001:db8::6]:2525")]);
}

#[tokio::test]
async fn nxdomain_is_permanent_5_1_2() {
    let dns = Zone::new().start();
    let err = resolver(dns.addr()).destination("nowhere.test").await.unwrap_err();
    assert_eq!(err, ResolveError::NoSuchDomain { domain: "nowhere.test".into() });
    assert!(!err.is_transient());
    assert_eq!(err.status(), "5.1.2");
}

#[tokio::test]
async fn domain_without_mx_or_address_is_permanent_5_1_2() {
    let dns = Zone::new().exists("bare.test").start();
    let err = resolver(dns.addr()).destination("bare.test").await.unwrap_err();
    assert_eq!(err, ResolveError::NoMailHost { domain: "bare.test".into() });
    assert!(!err.is_transient());
    assert_eq!(err.status(), "5.1.2");
}

#[tokio::test]
async fn null_mx_is_permanent_5_1_10() {
    // The null MX domain also has an address: RFC 7505 forbids falling back to it.
    let dns = Zone::new().null_mx("null.test").host("null.test", &["192.0.2.1"]).start();
    let err = resolver(dns.addr()).destination("null.test").await.unwrap_err();
    assert_eq!(err, ResolveError::NullMx { domain: "null.test".into() });
    assert!(!err.is_transient());
    assert_eq!(err.status(), "5.1.10");
    assert!(dns.log().contains("query[MX] null.test"), "{}", dns.log());
}

#[tokio::test]
async fn root_exchange_among_real_mx_records_is_ignored() {
    let dns = Zone::new().null_mx("mixed.test").mx("mixed.test", "mx.mixed.test", 10).host("mx.mixed.test", &["192.0.2.5"]).start();
    let dest = resolver(dns.addr()).destination("mixed.test").await.unwrap();
    assert_eq!(names(&dest), ["mx.mixed.test"]);
}

#[tokio::test]
async fn servfail_is_transient_4_4_3() {
    let server = Servfail::start().await;
    let err = resolver(server.addr()).destination("any.test").await.unwrap_err();
    assert!(matches!(err, ResolveError::Temporary { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(err.status(), "4.4.3");
}

#[tokio::test]
async fn silent_server_is_transient_within_the_timeout() {
    // Bound and never read: queries vanish, as with a dead server behind a firewall.
    let silent = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let timeout = Duration::from_millis(300);
    let settings = ResolverSettings { timeout, attempts: 2, ..settings(silent.local_addr().unwrap()) };
    let resolver = Resolver::new(&settings).unwrap();
    let started = Instant::now();
    let err = resolver.destination("silent.test").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status(), "4.4.3");
    // Two attempts of one timeout each, plus scheduling slack.
    assert!(elapsed < timeout * 2 + Duration::from_secs(1), "took {elapsed:?}");
    assert!(elapsed >= timeout, "gave up before the timeout: {elapsed:?}");
}

#[tokio::test]
async fn address_literals_need_no_dns() {
    // A server that never answers: any query would make these calls fail.
    let silent = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let resolver = resolver(silent.local_addr().unwrap());
    let dest = resolver.destination("[192.0.2.1]").await.unwrap();
    assert!(dest.implicit);
    assert_eq!(dest.hosts, [Host { name: "[192.0.2.1]".into(), preference: 0, addrs: vec![addr("192.0.2.1:2525")] }]);
    let dest = resolver.destination("[IPv6:2001:db8::1]").await.unwrap();
    assert_eq!(dest.hosts[0].addrs, [addr("[2001:db8::1]:2525")]);
    let dest = resolver.destination("[ipv6:::1]").await.unwrap();
    assert_eq!(dest.hosts[0].addrs, [addr("[::1]:2525")]);
}

#[tokio::test]
async fn bad_literals_and_names_are_permanent_5_1_3() {
    let silent = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let resolver = resolver(silent.local_addr().unwrap());
    for bad in ["[192.0.2]", "[192.0.2.1", "[IPv6:192.0.2.1]", "[2001:db8::1]", "[x-tag:abc]", "", ".", "a..b"] {
        let err = resolver.destination(bad).await.unwrap_err();
        assert!(matches!(err, ResolveError::BadSyntax { .. }), "{bad:?}: {err:?}");
        assert_eq!(err.status(), "5.1.3");
        assert!(!err.is_transient());
    }
}

#[test]
fn is_loop_matches_own_listeners() {
    let dest = |addrs: &[&str]| Destination {
        hosts: vec![Host { name: "mx.test".into(), preference: 0, addrs: addrs.iter().map(|a| addr(a)).collect() }],
        implicit: false,
    };
    let own = [addr("192.0.2.1:25")];
    assert!(is_loop(&dest(&["198.51.100.1:25", "192.0.2.1:25"]), &own));
    assert!(!is_loop(&dest(&["192.0.2.1:2525"]), &own), "ports differ");
    assert!(!is_loop(&dest(&["127.0.0.1:25"]), &own), "a specific own address is not loopback");

    let any = [addr("0.0.0.0:25")];
    assert!(is_loop(&dest(&["127.0.0.1:25"]), &any));
    assert!(is_loop(&dest(&["127.3.2.1:25"]), &any));
    assert!(is_loop(&dest(&["0.0.0.0:25"]), &any));
    assert!(is_loop(&dest(&["[::1]:25"]), &[addr("[::]:25")]));
    assert!(is_loop(&dest(&["127.0.0.1:25"]), &[addr("[::]:25")]), "[::] also takes IPv4");
    assert!(is_loop(&dest(&["[::ffff:127.0.0.1]:25"]), &[addr("127.0.0.1:25")]), "mapped addresses");
    assert!(is_loop(&dest(&["0.0.0.0:25"]), &[addr("127.0.0.1:25")]), "connecting to 0.0.0.0 reaches loopback");
    assert!(!is_loop(&dest(&["127.0.0.1:2525"]), &any), "ports differ");
    assert!(!is_loop(&dest(&["198.51.100.1:25"]), &any), "other hosts' addresses");
}

#[test]
fn order_mx_dedupes_and_caps() {
    let name = |s: &str| Name::from_ascii(s).unwrap();
    let mut mxs = vec![(20, name("a.test.")), (10, name("a.test.")), (5, name("b.test."))];
    mxs.extend((0..40).map(|i| (100, name(&format!("h{i}.test.")))));
    let ordered = order_mx(mxs);
    assert_eq!(ordered.len(), MAX_MX_HOSTS);
    assert_eq!(ordered[..2], [(5, name("b.test.")), (10, name("a.test."))]);
    assert!(ordered[2..].iter().all(|(p, _)| *p == 100));
}

#[test]
fn system_nameservers_from_resolv_conf() {
    let conf = "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver fe80::1%eth0\noptions ndots:2\n";
    assert_eq!(system_nameservers(conf), [addr("192.0.2.53:53"), addr("[2001:db8::53]:53")]);
    assert_eq!(system_nameservers("search example.com\n"), [addr("127.0.0.1:53"), addr("[::1]:53")]);
}

#[test]
fn settings_default_to_port_25_and_system_servers() {
    let settings = ResolverSettings::default();
    assert!(settings.nameservers.is_empty());
    assert_eq!(settings.mx_port, 25);
    assert!(Resolver::new(&settings).is_ok());
}
