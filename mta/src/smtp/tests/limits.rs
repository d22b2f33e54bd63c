//! Limits and their replies (RFC 5321 §4.5.3), timeouts and shutdown, as transcripts.

use super::*;
use crate::config::Span;

#[tokio::test]
async fn declared_and_actual_size_limits() {
    let h = harness_with(|c| c.limits.max_message_size = ByteSize(2048));
    let mut c = h.client(Kind::Smtp, REMOTE);
    let ehlo = c.hello().await;
    assert!(ehlo.contains("250-SIZE 2048"), "{ehlo}");
    assert!(c.cmd("MAIL FROM:<a@example.org> SIZE=4096").await.starts_with("552 5.3.4"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.org> SIZE=1000").await, "250 2.1.0 Ok");
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    c.cmd("DATA").await;
    for _ in 0..40 {
        c.send(b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n").await;
    }
    assert_eq!(c.cmd(".").await, "552 5.3.4 Message size exceeds fixed maximum message size");
    assert_eq!(h.store().queue_len(), 0);
    // The session is still in step.
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok");
}

#[tokio::test]
async fn too_many_recipients_is_452() {
    let h = harness_with(|c| c.limits.max_recipients = 2);
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "C: MAIL FROM:<a@example.org>
         S: 250 2.1.0 Ok
         C: RCPT TO:<a@localhost>
         S: 250 2.1.5 Ok
         C: RCPT TO:<b@localhost>
         S: 250 2.1.5 Ok
         C: RCPT TO:<c@localhost>
         S: 452 4.5.3 Too many recipients",
    )
    .await;
}

#[tokio::test]
async fn overlong_command_lines_are_500_and_the_session_stays_in_step() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.cmd(&format!("NOOP {}", "x".repeat(5000))).await;
    assert_eq!(r, "500 5.5.2 Line too long (RFC 5321 §4.5.3.1.4)");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok");
}

#[tokio::test]
async fn overlong_message_lines_are_refused() {
    let h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    c.cmd("DATA").await;
    c.send(format!("Subject: long\r\n\r\n{}\r\n", "y".repeat(999)).as_bytes()).await;
    assert!(c.cmd(".").await.starts_with("500 5.5.2 Line too long"));
}

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let h = harness_with(|c| c.limits.max_errors = 3);
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "C: BOGUS1
         S: 500 5.5.1 Command unrecognized
         C: BOGUS2
         S: 500 5.5.1 Command unrecognized
         C: BOGUS3
         S: 500 5.5.1 Command unrecognized
         S: 421 4.7.0 mx.test Too many errors, closing connection
         S: <eof>",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_time_out_with_421() {
    let h = harness_with(|c| c.limits.idle_timeout = Span(Duration::from_secs(5)));
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.script(
        "S: 421 4.4.2 mx.test Idle timeout, closing connection
         S: <eof>",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_data_transfer_times_out() {
    let h = harness_with(|c| c.limits.idle_timeout = Span(Duration::from_secs(5)));
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd("RCPT TO:<postmaster@localhost>").await;
    c.cmd("DATA").await;
    c.send(b"Subject: slow\r\n").await;
    assert_eq!(c.reply().await, "421 4.4.2 Timeout during DATA, closing connection");
    assert_eq!(h.store().queue_len(), 0);
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_and_refuses_new_ones() {
    let h = harness();
    let mut idle = h.client(Kind::Smtp, REMOTE);
    idle.hello().await;
    h.shutdown.send(true).unwrap();
    assert_eq!(idle.line().await, "421 4.3.2 mx.test Service shutting down, try again later");
    assert_eq!(idle.line().await, "<eof>");
    let mut late = h.client(Kind::Smtp, REMOTE);
    assert_eq!(late.line().await, "421 4.3.2 mx.test Service shutting down, try again later");
}

#[tokio::test]
async fn shutdown_lets_an_open_transaction_finish() {
    let mut h = harness();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await, "250 2.1.0 Ok");
    h.shutdown.send(true).unwrap();
    assert_eq!(c.cmd("RCPT TO:<postmaster@localhost>").await, "250 2.1.5 Ok");
    assert_eq!(c.cmd("DATA").await, "354 End data with <CR><LF>.<CR><LF>");
    c.send(MESSAGE.as_bytes()).await;
    assert!(c.cmd(".").await.starts_with("250 2.0.0 Ok: queued as"));
    assert!(h.accepted.try_recv().is_ok());
    // Between transactions the shutdown takes effect.
    assert_eq!(c.line().await, "421 4.3.2 mx.test Service shutting down, try again later");
}
