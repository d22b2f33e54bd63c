//! A scripted fast-path callee on the stream side (the TCP listener a sipp answer points the
//! daemon at), for what a real sipmta callee does not do on demand: refusing in the FP/1
//! preamble or at `USE`, or resetting the stream in the middle of DATA.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the peer does with the one stream it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Answer `FP/1 HELLO` with `FP/1 ERR 503 overloaded` and close.
    RefuseInPreamble,
    /// Echo `HELLO`, then answer `USE` with `FP/1 ERR 415 unsupported-protocol` and close.
    RefuseUse,
    /// Complete FP/1 and an SMTP transaction, answering the final dot `250` (a final server
    /// that offers DSN, so the caller passes NOTIFY/ORCPT/ENVID on).
    Deliver,
    /// [`Script::Deliver`], but the reply to the final dot waits for [`StreamPeer::release`]
    /// (a slow final server).
    DeliverWhenReleased,
    /// Complete FP/1 (`smtp`), accept MAIL, RCPT and DATA, then reset the connection (RST)
    /// once the message's first lines have arrived: no reply to the final dot ever comes.
    ResetInData,
}

/// The listening peer; [`StreamPeer::finish`] returns what it received.
pub struct StreamPeer {
    pub port: u16,
    handle: JoinHandle<Vec<String>>,
    release: std::sync::mpsc::Sender<()>,
    held: std::sync::mpsc::Receiver<()>,
}

impl StreamPeer {
    /// Accepts one stream and plays `script` on it.
    pub fn start(script: Script) -> StreamPeer {
        StreamPeer::sequence(vec![script])
    }

    /// Accepts one stream per script, in turn.
    pub fn sequence(scripts: Vec<Script>) -> StreamPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (release, released) = std::sync::mpsc::channel();
        let (hold, held) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            scripts
                .into_iter()
                .map(|script| {
                    let stream = accept(&listener);
                    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    play(stream, script, &hold, &released)
                })
                .collect()
        });
        StreamPeer { port, handle, release, held }
    }

    /// Wait until a [`Script::DeliverWhenReleased`] peer has the whole message and holds its
    /// reply.
    pub fn wait_held(&self) {
        self.held.recv_timeout(Duration::from_secs(30)).expect("the final dot never reached the stream peer");
    }

    /// Let a [`Script::DeliverWhenReleased`] peer answer the final dot.
    pub fn release(&self) {
        self.release.send(()).unwrap();
    }

    /// The lines the peer received on its one stream (joined by newlines); panics if the
    /// script failed.
    pub fn finish(self) -> String {
        self.finish_all().join("\n")
    }

    /// The lines received on each stream, in order.
    pub fn finish_all(self) -> Vec<String> {
        self.handle.join().unwrap()
    }
}

fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(start.elapsed() < Duration::from_secs(20), "the daemon never connected to the stream peer");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// The stream's lines as they arrive, and a record of them.
struct Lines {
    reader: BufReader<TcpStream>,
    seen: Vec<String>,
}

impl Lines {
    fn next(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        let l = l.trim_end().to_owned();
        self.seen.push(l.clone());
        l
    }
}

fn play(stream: TcpStream, script: Script, hold: &std::sync::mpsc::Sender<()>, released: &std::sync::mpsc::Receiver<()>) -> String {
    let mut out = stream.try_clone().unwrap();
    let mut lines = Lines { reader: BufReader::new(stream), seen: Vec::new() };
    let hello = lines.next();
    assert!(hello.starts_with("FP/1 HELLO "), "{hello}");
    if script == Script::RefuseInPreamble {
        out.write_all(b"FP/1 ERR 503 overloaded\r\n").unwrap();
        return lines.seen.join("\n");
    }
    out.write_all(format!("{hello}\r\n").as_bytes()).unwrap();
    let mut next = lines.next();
    if next == "FP/1 PROTOS?" {
        out.write_all(b"FP/1 PROTOS smtp\r\n").unwrap();
        next = lines.next();
    }
    assert_eq!(next, "FP/1 USE smtp");
    if script == Script::RefuseUse {
        out.write_all(b"FP/1 ERR 415 unsupported-protocol\r\n").unwrap();
        return lines.seen.join("\n");
    }
    // No ESMTP extensions: the client sends one command at a time.
    out.write_all(b"FP/1 OK smtp\r\n220 peer.test ESMTP\r\n").unwrap();
    let mut in_data = false;
    loop {
        let l = lines.next();
        if in_data {
            if script == Script::ResetInData && l.starts_with("Subject:") {
                break;
            }
            if l == "." {
                in_data = false;
                if script == Script::DeliverWhenReleased {
                    let _ = hold.send(());
                    match released.recv_timeout(Duration::from_secs(30)) {
                        Ok(()) => {}
                        // The test is over (it killed the caller instead).
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return lines.seen.join("\n"),
                        Err(e) => panic!("the test never released the final reply: {e}"),
                    }
                }
                out.write_all(b"250 2.0.0 stored\r\n").unwrap();
            }
            continue;
        }
        let reply: &[u8] = match l.get(..4).map(str::to_ascii_uppercase).as_deref() {
            Some("QUIT") => {
                out.write_all(b"221 2.0.0 bye\r\n").unwrap();
                return lines.seen.join("\n");
            }
            Some("EHLO") if script == Script::Deliver => b"250-peer.test\r\n250 DSN\r\n",
            Some("RSET") => b"250 2.0.0 reset\r\n",
            Some("EHLO") => b"250 peer.test\r\n",
            Some("MAIL" | "RCPT") => b"250 2.0.0 ok\r\n",
            Some("DATA") => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            _ => panic!("unexpected command {l:?}"),
        };
        out.write_all(reply).unwrap();
    }
    let Lines { reader, seen } = lines;
    // The reader holds a duplicate descriptor; only the last close sends the RST.
    drop(reader);
    reset(out);
    seen.join("\n")
}

/// Close with RST (SO_LINGER 0) rather than FIN, as a crashed peer or a middlebox would.
#[allow(unsafe_code)]
fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor is open for the whole call (we own `stream`), and the option value
    // points at a live `linger` of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast::<libc::c_void>(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER): {}", std::io::Error::last_os_error());
    drop(stream);
}
