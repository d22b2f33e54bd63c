//! Fault injection (issue 8 item 2): a next hop that stalls, resets in the middle of DATA or
//! answers garbage; a DNS server that times out or answers SERVFAIL; a disk that fills up
//! while a message arrives; the SIP proxy/registrar going down during a call. Each ends in the
//! right reply or a retry, nothing is lost, and the daemon goes on serving. (The registrar down
//! when a site starts is in `registrar.rs`.)

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fastpath::wait_history;
use crate::support::peers::{Dns, Sink};
use crate::support::*;

/// What the scripted next hop does with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Takes the whole message, then never answers the final dot.
    StallAfterData,
    /// Resets the connection (RST) once the message's first line has arrived.
    ResetInData,
    /// Greets with something that is not SMTP.
    Garbage,
    /// A correct server that accepts the message.
    Accept,
}

/// A next hop playing one [`Fault`] per connection in turn, then accepting; keeps what it
/// accepted.
struct Remote {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl Remote {
    fn start(faults: Vec<Fault>) -> Remote {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let kept = accepted.clone();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let fault = faults.get(i).copied().unwrap_or(Fault::Accept);
                let kept = kept.clone();
                std::thread::spawn(move || play(stream, fault, &kept));
            }
        });
        Remote { addr, accepted }
    }
}

fn play(stream: TcpStream, fault: Fault, accepted: &Mutex<Vec<String>>) {
    let mut out = stream.try_clone().unwrap();
    let mut lines = BufReader::new(stream);
    if fault == Fault::Garbage {
        let _ = out.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
        return;
    }
    let _ = out.write_all(b"220 remote.test ESMTP\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-remote.test\r\n250 8BITMIME\r\n",
            "DATA" => {
                let _ = out.write_all(b"354 go ahead\r\n");
                let mut message = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if fault == Fault::ResetInData {
                        reset(&out);
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(&line);
                }
                if fault == Fault::StallAfterData {
                    // Hold the connection open without a word until the client gives up.
                    let _ = std::io::copy(&mut lines, &mut std::io::sink());
                    return;
                }
                accepted.lock().unwrap().push(message);
                b"250 2.0.0 accepted\r\n"
            }
            "QUIT" => {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = out.write_all(reply);
    }
}

/// Close with RST instead of FIN (SO_LINGER with a zero timeout).
fn reset(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    #[allow(unsafe_code)]
    // SAFETY: setsockopt on a socket we own, with a correctly sized `linger`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn submit(d: &Daemon, to: &str, subject: &str) -> String {
    let out = d.swaks(&["--to", to, "--from", "alice@example.org", "--h-Subject", subject]);
    let t = transcript(&out);
    assert!(out.status.success(), "{t}");
    queue_id(&t)
}

#[test]
fn a_next_hop_that_stalls_resets_or_answers_garbage_is_retried_until_the_mail_is_delivered() {
    let remote = Remote::start(vec![Fault::StallAfterData, Fault::ResetInData, Fault::Garbage]);
    let relay = format!(
        "[relay]\nretry = [\"1s\"]\nsmtp_timeout = \"3s\"\nnameservers = [\"127.0.0.1:9\"]\n[relay.transport]\n\"remote.example\" = \"[127.0.0.1]:{}\"",
        remote.addr.port()
    );
    let d = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]", &relay);
    let id = submit(&d, "bob@remote.example", "through three faults");
    // While the next hop stalls, the daemon goes on taking and delivering other mail.
    let local = submit(&d, "postmaster@localhost", "meanwhile");
    d.wait_mailbox("localhost/postmaster", 1);
    wait_history(&d, &local, "delivered");
    let shown = wait_history(&d, &id, "relayed");
    let deferrals = shown.lines().filter(|l| l.contains("deferred")).count();
    assert!(deferrals >= 3, "three failed attempts, each deferred:\n{shown}");
    assert!(shown.contains("timed out") || shown.contains("timeout"), "{shown}");
    let got = remote.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert!(got[0].contains("Subject: through three faults"), "{}", got[0]);
    // Nothing bounced.
    assert!(d.mailbox("example.org/alice").is_empty());
}

/// A DNS server on `addr` that answers nothing (`mode` 0) or SERVFAIL to everything (1).
fn broken_dns(addr: SocketAddr, mode: Arc<AtomicU8>) -> std::thread::JoinHandle<()> {
    let socket = UdpSocket::bind(addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let m = mode.load(Ordering::Relaxed);
            if m == 2 {
                return;
            }
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            if m == 1 && n >= 12 {
                // The query back as a response: QR set, opcode and RD kept, RA set, RCODE 2.
                let mut answer = buf[..n].to_vec();
                answer[2] = 0x80 | (buf[2] & 0x79);
                answer[3] = 0x82;
                let _ = socket.send_to(&answer, from);
            }
        }
    })
}

#[test]
fn dns_timeouts_and_servfail_defer_and_the_mail_goes_once_dns_answers() {
    let sink = Sink::start(&[], None);
    let dns_addr = Dns::address();
    let mode = Arc::new(AtomicU8::new(0));
    let broken = broken_dns(dns_addr, mode.clone());
    let relay =
        format!("[relay]\nretry = [\"1s\"]\nnameservers = [\"{dns_addr}\"]\ndns_timeout = \"1s\"\nmx_port = {}\n", sink.addr.port());
    let d = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]", &relay);
    let id = submit(&d, "bob@remote.example", "dns trouble");
    let timed_out =
        wait_history(&d, &id, "451 4.4.3 temporary DNS failure for remote.example: MX lookup of remote.example failed: request timed out");
    mode.store(1, Ordering::Relaxed);
    let servfail = wait_history(&d, &id, "Server Failure");
    mode.store(2, Ordering::Relaxed);
    broken.join().unwrap();
    // The zone comes back (dnsmasq on the same address): the next attempt delivers.
    let _dns = Dns::start_at(
        dns_addr,
        &["--mx-host=remote.example,mx1.remote.example,10".into(), "--host-record=mx1.remote.example,127.0.0.1".into()],
    );
    let shown = wait_history(&d, &id, "relayed");
    wait_for("the sink to get the message", || sink.messages().iter().any(|m| m.contains("Subject: dns trouble")));
    assert!(timed_out.contains("deferred") && servfail.contains("deferred"), "{timed_out}\n{servfail}");
    // Every attempt before was deferred, none failed the message.
    let attempts: Vec<&str> = shown.lines().filter(|l| l.contains("<bob@remote.example>")).collect();
    assert!(attempts.len() >= 3 && attempts[..attempts.len() - 1].iter().all(|l| l.contains("deferred: ")), "{shown}");
    assert!(d.mailbox("example.org/alice").is_empty(), "no DSN");
}

/// A small filesystem mounted for one test (an 8 MiB ext4 image on a loop device, or a tmpfs
/// of that size where loop devices are not available); unmounted on drop.
struct SmallDisk {
    mount: PathBuf,
    _image: tempfile::TempDir,
}

impl SmallDisk {
    fn mount_at(mount: &Path) -> SmallDisk {
        std::fs::create_dir_all(mount).unwrap();
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("disk.img");
        let run = |cmd: &str, args: &[&str]| std::process::Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success());
        let file_s = file.to_str().unwrap();
        let mount_s = mount.to_str().unwrap();
        let loop_ok = run("truncate", &["-s", "8M", file_s])
            && run("mkfs.ext4", &["-q", "-m", "0", file_s])
            && run("mount", &["-o", "loop", file_s, mount_s]);
        if !loop_ok {
            assert!(run("mount", &["-t", "tmpfs", "-o", "size=8m", "tmpfs", mount_s]), "cannot mount a small filesystem (run as root)");
        }
        SmallDisk { mount: mount.to_path_buf(), _image: image }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

#[test]
fn a_full_disk_is_a_temporary_failure_and_the_daemon_recovers() {
    let (dir, config) = Daemon::prepare("", "[limits]\nmax_message_size = \"64MiB\"\n");
    // Below 1 MiB free, MAIL is refused; above it a message may still not fit.
    let text = std::fs::read_to_string(&config).unwrap().replace("min_free_space = 0", "min_free_space = \"1MiB\"");
    std::fs::write(&config, text).unwrap();
    let disk = SmallDisk::mount_at(&dir.path().join("data"));
    let d = Daemon::start_with(dir, config);
    // A message larger than the free space: refused with a 4xx, nothing half-written kept.
    let big = format!("{}\n", "0123456789abcdef".repeat(4)).repeat(200_000);
    let body = d.dir.path().join("big.txt");
    std::fs::write(&body, &big).unwrap();
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--body", body.to_str().unwrap()]);
    let t = transcript(&out);
    assert!(t.contains("<** 452 4.3.1 Insufficient system storage"), "{t}");
    // The daemon still serves, and a small message fits.
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--h-Subject", "small"]);
    assert!(out.status.success(), "{}", transcript(&out));
    let mails = d.wait_mailbox("localhost/postmaster", 1);
    assert!(mails.iter().all(|m| !m.contains("0123456789abcdef")), "the refused message was not delivered");
    // Fill what is left: MAIL is refused before any data is sent.
    let filler = d.data().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--h-Subject", "no room"]);
    let t = transcript(&out);
    assert!(t.contains("<** 452 4.3.1 Insufficient system storage"), "{t}");
    // Room again: accepted and delivered.
    std::fs::remove_file(&filler).unwrap();
    let out = d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--h-Subject", "room again"]);
    assert!(out.status.success(), "{}", transcript(&out));
    d.wait_mailbox("localhost/postmaster", 2);
    // Unmounted before the daemon's directory is removed.
    drop(disk);
}

/// The SIP proxy/registrar (Kamailio) goes away while A has a fast-path session open to B:
/// mail on that session still goes (the stream is direct), a message that needs a new call
/// falls back to relay, and nothing is lost or stuck.
#[test]
fn the_registrar_going_down_during_a_call_loses_nothing() {
    use crate::fastpath::{ENABLED, send, site};
    let kam = crate::support::sip::Kamailio::start();
    let b = site(&kam, "b.example", "050-2222-2222", ENABLED, "");
    let c = site(&kam, "c.example", "050-3333-3333", ENABLED, "");
    let transport = format!("\"b.example\" = \"[127.0.0.1]:{}\"\n\"c.example\" = \"[127.0.0.1]:{}\"\n", b.smtp.port(), c.smtp.port());
    // Sessions stay open a minute after their last message: the call outlives the proxy.
    let a = site(&kam, "a.example", "050-1111-1111", "enabled = true\nsession_idle = \"60s\"", &transport);
    for (key, number) in [("b.example", "050-2222-2222"), ("c.example", "050-3333-3333")] {
        assert!(cli(&a.config, &["route", "add", key, number], "").status.success());
    }
    let first = send(&a, "bob@b.example", "before the proxy died");
    wait_history(&a, &first, "delivered via fast path to +815022222222");
    drop(kam);
    // On the open call: still the fast path.
    let second = send(&a, "bob@b.example", "on the open call");
    wait_history(&a, &second, "delivered via fast path to +815022222222");
    // A new call cannot be placed: relayed instead, delivered once.
    let third = send(&a, "carol@c.example", "needs a new call");
    let shown = wait_history(&a, &third, "relayed: 127.0.0.1");
    assert!(shown.contains("fast path to +815033333333 failed"), "{shown}");
    assert_eq!(b.wait_mailbox("b.example/bob", 2).len(), 2);
    assert_eq!(c.wait_mailbox("c.example/carol", 1).len(), 1);
    // And A still takes mail.
    let out = a.swaks(&["--to", "postmaster@localhost", "--from", "alice@a.example"]);
    assert!(out.status.success(), "{}", transcript(&out));
}
