//! The fast path's doors, tried by a stranger (issue 8 item 4): an INVITE sent straight to a
//! site's SIP user agent from an unknown address gets a stream into its SMTP server, which is
//! no more than port 25 is: it takes mail for the site's own domains and refuses to relay
//! anywhere else. A stream that does not present the call's token gets nothing at all.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::support::sip::{DOMAIN, free_port};
use crate::support::*;

const TOKEN: &str = "c3RyYW5nZXJzLXRva2VuMQ";

/// Site B (b.example, 050-2222-2222) registered with its own registrar; returns it and its SIP
/// user agent's address.
fn site_b() -> (Daemon, SocketAddr) {
    let (registrar, sip) = (free_port(), free_port());
    let tables = format!(
        "[registrar]\nlisten = \"127.0.0.1:{registrar}\"\n[fastpath]\nenabled = true\nsip_listen = \"127.0.0.1:{sip}\"\n\
         proxy = \"127.0.0.1:{registrar}\"\ndomain = \"{DOMAIN}\"\n[[fastpath.numbers]]\nnumber = \"050-2222-2222\"\n"
    );
    // It trusts loopback, so only the fast path's own rule can refuse the relay below.
    let mut b = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]\nlocal_domains = [\"b.example\"]", &tables);
    b.wait_line(|l| l.contains(" registered number=+815022222222"));
    (b, SocketAddr::from(([127, 0, 0, 1], sip)))
}

/// Send `request` and return the first final response.
fn transact(socket: &UdpSocket, to: SocketAddr, request: &str) -> String {
    socket.send_to(request.as_bytes(), to).unwrap();
    let mut buf = [0u8; 8192];
    loop {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !answer.starts_with("SIP/2.0 1") {
            return answer;
        }
    }
}

/// The stranger's INVITE to B's number, offering to connect to B (`a=setup:active`).
fn invite(b_sip: SocketAddr) -> (UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let local = socket.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 TCP smtp\r\nc=IN IP4 127.0.0.1\r\n\
         a=setup:active\r\na=connection:new\r\na=fp-token:{TOKEN}\r\n"
    );
    let request = format!(
        "INVITE sip:+815022222222@{b_sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-stranger-1;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:+819999999999@stranger.example>;tag=s1\r\nTo: <sip:+815022222222@{DOMAIN}>\r\nCall-ID: stranger-1@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:+819999999999@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let answer = transact(&socket, b_sip, &request);
    (socket, answer)
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    reader.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

#[test]
fn a_strangers_invite_gets_a_mail_server_that_will_not_relay() {
    let (b, b_sip) = site_b();
    let (socket, answer) = invite(b_sip);
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}\n{}", b.log());
    let to = answer.lines().find(|l| l.to_ascii_lowercase().starts_with("to:")).unwrap().to_owned();
    let ack = format!(
        "ACK sip:+815022222222@{b_sip} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-stranger-2;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:+819999999999@stranger.example>;tag=s1\r\n{to}\r\nCall-ID: stranger-1@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        socket.local_addr().unwrap()
    );
    socket.send_to(ack.as_bytes(), b_sip).unwrap();
    let port: u16 =
        answer.lines().find_map(|l| l.strip_prefix("m=application ")).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    let stream_addr = SocketAddr::from(([127, 0, 0, 1], port));

    // A stream with another token is refused in the preamble, before any SMTP.
    let wrong = TcpStream::connect(stream_addr).unwrap();
    wrong.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = BufReader::new(wrong.try_clone().unwrap());
    (&wrong).write_all(b"FP/1 HELLO d3JvbmctdG9rZW4td3Jvbg\r\n").unwrap();
    let refused = line(&mut w);
    assert!(refused.starts_with("FP/1 ERR 403"), "{refused}");

    // The call's own token gets an SMTP session ...
    let s = TcpStream::connect(stream_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    w.write_all(format!("FP/1 HELLO {TOKEN}\r\n").as_bytes()).unwrap();
    assert_eq!(line(&mut r), format!("FP/1 HELLO {TOKEN}"));
    w.write_all(b"FP/1 PROTOS?\r\n").unwrap();
    let protos = line(&mut r);
    assert!(protos.starts_with("FP/1 PROTOS") && protos.contains("smtp"), "{protos}");
    w.write_all(b"FP/1 USE smtp\r\n").unwrap();
    assert_eq!(line(&mut r), "FP/1 OK smtp");
    assert!(line(&mut r).starts_with("220"));
    let mut cmd = |text: &str| {
        w.write_all(format!("{text}\r\n").as_bytes()).unwrap();
        let mut reply = line(&mut r);
        while reply.as_bytes().get(3) == Some(&b'-') {
            reply = line(&mut r);
        }
        reply
    };
    assert!(cmd("NOOP").starts_with("250"));
    assert!(cmd("EHLO stranger.example").starts_with("250"));
    assert!(cmd("MAIL FROM:<someone@stranger.example>").starts_with("250"));
    // ... that relays nowhere, though the site trusts every loopback client on port 25 ...
    for victim in ["victim@remote.example", "victim%remote.example@b.example", "@b.example:victim@remote.example"] {
        let reply = cmd(&format!("RCPT TO:<{victim}>"));
        assert!(reply.starts_with("5"), "{victim}: {reply}");
    }
    // ... and takes mail for the site's own users only.
    assert!(cmd("RCPT TO:<bob@b.example>").starts_with("250"));
    assert!(cmd("DATA").starts_with("354"));
    assert!(cmd("Subject: from a stranger\r\n\r\nhello\r\n.").starts_with("250"));
    cmd("QUIT");
    b.wait_mailbox("b.example/bob", 1);
    let queue = transcript(&cli(&b.config, &["queue", "list"], ""));
    assert!(!queue.contains("remote.example"), "{queue}");
    assert!(b.log().contains("fast-path stream without a known token refused") || b.log().contains("FP/1 handshake failed"), "{}", b.log());
}
