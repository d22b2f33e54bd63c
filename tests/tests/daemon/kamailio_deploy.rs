//! deploy/kamailio.cfg, the production registrar/proxy (issue 6 item 3), tested like the
//! reference config: it passes Kamailio's own check with the example users file; two sipmta
//! sites with their own digest passwords register through it, ask each other with OPTIONS
//! (authenticated like their INVITEs) and exchange mail by fast path;
//! a site with a wrong password is refused (and mail for its number is relayed); and a number
//! that authenticates cannot register another number (403).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fastpath::{relay_target, send, wait_history};
use crate::support::sip::{DOMAIN, Kamailio, free_port, kamailio_bin};
use crate::support::*;

const A_PASSWORD: &str = "correct horse";
const B_PASSWORD: &str = "battery staple";

fn deploy(name: &str) -> PathBuf {
    workspace().join("deploy").join(name)
}

/// Lower-case hex MD5 of `text`, by coreutils' md5sum: the tool the users file tells operators
/// to use.
fn md5(text: &str) -> String {
    let mut child = Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// HA1 = MD5(user ":" realm ":" password) (RFC 2617 §3.2.2.2), as kamailio-users.cfg holds it.
fn ha1(user: &str, realm: &str, password: &str) -> String {
    md5(&format!("{user}:{realm}:{password}"))
}

/// deploy/kamailio.cfg for [`DOMAIN`], with a users file holding `users` (E.164, password).
fn kamailio(users: &[(&str, &str)]) -> Kamailio {
    let file: String = users.iter().map(|(number, pw)| format!("$sht(users=>{number}) = \"{}\";\n", ha1(number, DOMAIN, pw))).collect();
    let defines = [format!("SIP_DOMAIN=\"{DOMAIN}\""), "CTL_SOCKET=\"unix:kamailio_ctl\"".to_owned()];
    Kamailio::start_config(&deploy("kamailio.cfg"), &defines, &[("kamailio-users.cfg", &file)])
}

/// The `[fastpath]` tables of a site with `number` and `password`, registering through `kam`
/// (the built-in registrar off, as deploy/README.md says); `fastpath` holds extra
/// `[fastpath]` keys, `relay` extra `[relay.transport]` entries.
fn tables(kam: &Kamailio, number: &str, password: &str, fastpath: &str, relay: &str) -> String {
    let sip = free_port();
    format!(
        "[registrar]\nenabled = false\n[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\nproxy = \"{}\"\ndomain = \"{DOMAIN}\"\n\
         answer_budget = \"3s\"\nsession_idle = \"0s\"\n{fastpath}\n[[fastpath.numbers]]\nnumber = \"{number}\"\npassword = \"{password}\"\n\
         [relay]\nretry = [\"1s\"]\nnameservers = [\"127.0.0.1:9\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:9\"\n{relay}",
        kam.addr
    )
}

fn top(domain: &str) -> String {
    format!("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"{domain}\"]")
}

fn route(d: &Daemon, key: &str, number: &str) {
    let out = cli(&d.config, &["route", "add", key, number], "");
    assert!(out.status.success(), "{}", transcript(&out));
}

#[test]
fn the_deploy_config_and_example_users_pass_kamailios_check() {
    // The example's HA1s are what its comments say (realm sip.example.jp).
    let example = std::fs::read_to_string(deploy("kamailio-users.cfg.example")).unwrap();
    for (number, password) in [("+815011111111", A_PASSWORD), ("+815022222222", B_PASSWORD)] {
        let line = format!("$sht(users=>{number}) = \"{}\";", ha1(number, "sip.example.jp", password));
        assert!(example.contains(&line), "no {line:?} in the example:\n{example}");
    }
    // As installed: the users file next to it, the defaults unchanged.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(deploy("kamailio.cfg"), dir.path().join("kamailio.cfg")).unwrap();
    std::fs::write(dir.path().join("kamailio-users.cfg"), &example).unwrap();
    let out = Command::new(kamailio_bin()).arg("-c").arg("-f").arg(dir.path().join("kamailio.cfg")).current_dir("/").output().unwrap();
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("config file ok"), "{t}");
    // Without a users file nobody could register: Kamailio refuses to start instead.
    std::fs::remove_file(dir.path().join("kamailio-users.cfg")).unwrap();
    let out = Command::new(kamailio_bin()).arg("-c").arg("-f").arg(dir.path().join("kamailio.cfg")).current_dir("/").output().unwrap();
    assert!(!out.status.success(), "{}", transcript(&out));
}

#[test]
fn two_sites_with_their_own_passwords_exchange_mail_through_it() {
    // B signals over TCP, A over UDP: Kamailio bridges the two.
    let kam = kamailio(&[("+815011111111", A_PASSWORD), ("+815022222222", B_PASSWORD)]);
    let b = Daemon::start(&top("b.example"), &tables(&kam, "050-2222-2222", B_PASSWORD, "transport = \"tcp\"", ""));
    let a = Daemon::start(&top("a.example"), &tables(&kam, "050-1111-1111", A_PASSWORD, "", ""));
    route(&a, "b.example", "050-2222-2222");
    route(&b, "a.example", "050-1111-1111");
    let out = a.swaks(&["--to", "bob@b.example", "--from", "alice@a.example", "--h-Subject", "through kamailio"]);
    let t = transcript(&out);
    assert!(out.status.success() && t.contains("via fast path to +815022222222"), "{t}");
    let mail = &b.wait_mailbox("b.example/bob", 1)[0];
    assert!(mail.contains("Subject: through kamailio"), "{mail}");
    // And back: B's INVITE is challenged (407) and authenticated as B's number too.
    let id = send(&b, "alice@a.example", "and back");
    a.wait_mailbox("a.example/alice", 1);
    wait_history(&b, &id, "delivered via fast path to +815011111111");
    // Before each first call, each site asked the other with OPTIONS: challenged and
    // authenticated as the INVITE is, then routed to the registered number's agent.
    for (site, log) in [("A", a.log()), ("B", b.log())] {
        assert!(
            log.contains("outcome=\"answered\" protocols=[\"smtp\"]") && log.contains("protocol learned from OPTIONS"),
            "{site}:\n{log}"
        );
    }
    let log = kam.log();
    assert!(!log.contains("auth failed") && !log.contains("forbidden:") && !log.contains(" ERROR: "), "{log}");
}

/// Runs `sipmta serve` on a config expected to fail at start; returns its exit code and log.
fn serve_fails(extra_top: &str, tables: &str) -> (Option<i32>, String) {
    let (dir, config) = Daemon::prepare(extra_top, tables);
    let log = dir.path().join("serve.log");
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("SIPMTA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for("sipmta to give up starting", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    (status.and_then(|s| s.code()), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_wrong_password_is_refused_and_mail_for_that_number_is_relayed() {
    let kam = kamailio(&[("+815011111111", A_PASSWORD), ("+815022222222", B_PASSWORD)]);
    // B's fast path cannot register: sipmta refuses to start rather than run unreachable.
    let (code, log) = serve_fails(&top("b.example"), &tables(&kam, "050-2222-2222", "wrong", "", ""));
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}:\n{log}");
    assert!(log.contains("starting the SIP user agent") && log.contains("401"), "{log}");
    let kam_log = kam.log();
    assert!(kam_log.contains("auth failed: REGISTER by '+815022222222'"), "{kam_log}");
    // Kamailio has no binding for B's number: A's call gets 404 and the message is relayed.
    let b = relay_target();
    let a = Daemon::start(
        &top("a.example"),
        &tables(&kam, "050-1111-1111", A_PASSWORD, "", &format!("\"b.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port())),
    );
    route(&a, "b.example", "050-2222-2222");
    let id = send(&a, "bob@b.example", "B is not registered");
    b.wait_mailbox("b.example/bob", 1);
    let shown = wait_history(&a, &id, "no longer queued");
    assert!(shown.contains("fast path to +815022222222 failed: SIP call to +815022222222: call rejected: 404"), "{shown}");
    assert!(shown.contains("relayed: 127.0.0.1"), "{shown}");
}

/// A SIP client on a UDP socket that answers one digest challenge (RFC 2617 §3.2.2, qop=auth).
struct Client {
    socket: UdpSocket,
    kam: SocketAddr,
    cseq: u32,
}

impl Client {
    fn new(kam: SocketAddr) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { socket, kam, cseq: 0 }
    }

    /// Sends `method` to `uri` with `headers` (From, To, Contact...), answers a 401/407 as
    /// `user` with `password`, and returns the final response.
    fn request(&mut self, method: &str, uri: &str, headers: &str, user: &str, password: &str) -> String {
        let first = self.send(method, uri, headers, "");
        let code = &first[8..11];
        if code != "401" && code != "407" {
            return first;
        }
        let header = if code == "401" { "WWW-Authenticate" } else { "Proxy-Authenticate" };
        let challenge = first.lines().find(|l| l.starts_with(header)).unwrap_or_else(|| panic!("{first}"));
        let param = |name: &str| {
            let start = challenge.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name} in {challenge}")) + name.len() + 2;
            challenge[start..start + challenge[start..].find('"').unwrap()].to_owned()
        };
        let (realm, nonce) = (param("realm"), param("nonce"));
        let ha2 = md5(&format!("{method}:{uri}"));
        let response = md5(&format!("{}:{nonce}:00000001:0a4f113b:auth:{ha2}", ha1(user, &realm, password)));
        let auth = format!(
            "{}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", \
             algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n",
            if code == "401" { "Authorization" } else { "Proxy-Authorization" }
        );
        self.send(method, uri, headers, &auth)
    }

    fn send(&mut self, method: &str, uri: &str, headers: &str, auth: &str) -> String {
        self.cseq += 1;
        let local = self.socket.local_addr().unwrap();
        let cseq = self.cseq;
        let request = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-deploy-{cseq};rport\r\nMax-Forwards: 70\r\n{headers}\
             Call-ID: deploy-{}@127.0.0.1\r\nCSeq: {cseq} {method}\r\n{auth}Content-Length: 0\r\n\r\n",
            local.port()
        );
        self.socket.send_to(request.as_bytes(), self.kam).unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let (n, _) = self.socket.recv_from(&mut buf).unwrap();
            let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !answer.starts_with("SIP/2.0 1") {
                return answer;
            }
        }
    }
}

#[test]
fn a_number_may_register_only_itself() {
    let kam = kamailio(&[("+815011111111", A_PASSWORD), ("+815022222222", B_PASSWORD)]);
    let mut client = Client::new(kam.addr);
    let contact = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let register = |to: &str| {
        format!("From: <sip:{to}@{DOMAIN}>;tag=d1\r\nTo: <sip:{to}@{DOMAIN}>\r\nContact: <sip:{to}@{contact}>\r\nExpires: 60\r\n")
    };
    let uri = format!("sip:{DOMAIN}");
    // Its own number, written nationally in To: normalised to the E.164 user it authenticates as.
    let own = client.request("REGISTER", &uri, &register("050-1111-1111"), "+815011111111", A_PASSWORD);
    assert!(own.starts_with("SIP/2.0 200"), "{own}");
    // Another number, with valid credentials of the first: 403.
    let other = client.request("REGISTER", &uri, &register("+815022222222"), "+815011111111", A_PASSWORD);
    assert!(other.starts_with("SIP/2.0 403"), "{other}");
    let log = kam.log();
    assert!(log.contains("forbidden: '+815011111111' may not use +815022222222 (REGISTER"), "{log}");
    // A number missing from the users file: 403 too.
    let unknown = client.request("REGISTER", &uri, &register("+815033333333"), "+815033333333", A_PASSWORD);
    assert!(unknown.starts_with("SIP/2.0 403"), "{unknown}");
    assert!(kam.log().contains("auth failed: REGISTER by unknown '+815033333333'"), "{}", kam.log());
    // Nor call as another number: an INVITE's From must be the authenticated number too.
    let invite = format!("From: <sip:+815022222222@{DOMAIN}>;tag=d2\r\nTo: <sip:+815011111111@{DOMAIN}>\r\nContact: <sip:x@{contact}>\r\n");
    let call = client.request("INVITE", &format!("sip:+815011111111@{DOMAIN};user=phone"), &invite, "+815011111111", A_PASSWORD);
    assert!(call.starts_with("SIP/2.0 403"), "{call}");
    // And without credentials an INVITE is only challenged.
    let anonymous = client.send("INVITE", &format!("sip:+815011111111@{DOMAIN}"), &invite, "");
    assert!(anonymous.starts_with("SIP/2.0 407"), "{anonymous}");
}
