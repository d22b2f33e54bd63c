//! SMTP smuggling (CVE-2023-51764 class): swaks sends each payload byte for byte
//! (`--no-data-fixup`); none may split the message or run the smuggled transaction.

use crate::support::*;

#[test]
fn no_smuggling_payload_splits_a_message() {
    let d = Daemon::start("", "");
    let forms: [(&str, &[u8]); 8] = [
        ("LF.LF", b"\n.\n"),
        ("LF.CRLF", b"\n.\r\n"),
        ("CRLF.LF", b"\r\n.\n"),
        ("CR.CR", b"\r.\r"),
        ("CR.CRLF", b"\r.\r\n"),
        ("CRLF.CR", b"\r\n.\r"),
        ("CRLF.CR CRLF", b"\r\n.\r\r\n"),
        ("CRLF NUL.CRLF", b"\r\n\x00.\r\n"),
    ];
    for (name, form) in forms {
        let mut data =
            format!("From: sender@example.org\r\nTo: postmaster@localhost\r\nSubject: smuggle {name}\r\n\r\nbefore").into_bytes();
        data.extend_from_slice(form);
        data.extend_from_slice(
            b"MAIL FROM:<admin@localhost>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
        );
        let file = d.dir.path().join("payload.eml");
        std::fs::write(&file, &data).unwrap();
        let out =
            d.swaks(&["--to", "postmaster@localhost", "--from", "sender@example.org", "--no-data-fixup", "--data", file.to_str().unwrap()]);
        let t = transcript(&out);
        assert_eq!(t.matches("queued as").count(), 1, "{name}: exactly one message accepted:\n{t}");
    }
    let mails = d.wait_mailbox("localhost/postmaster", forms.len());
    assert_eq!(mails.len(), forms.len());
    for mail in &mails {
        assert!(mail.contains("RCPT TO:<victim@localhost>"), "the payload stays message content:\n{mail}");
    }
    let (code, dir, _) = d.stop();
    assert_eq!(code, 0);
    // After a clean stop every delivery has finished: the victim got nothing.
    assert!(!dir.path().join("data/maildir/localhost/victim").exists(), "a smuggled message was delivered");
}
