//! sendmail: the envelope and message built from the input and the options, and a submission
//! into the queue of a store no daemon holds, and to a running daemon.

#![allow(clippy::unwrap_used)]

use super::*;

/// A site with no SMTP listener configured, so sendmail goes to the store unless a test names
/// a running daemon's.
fn config(dir: &std::path::Path) -> Config {
    let none = crate::config::Listener { listen: Vec::new(), ..Default::default() };
    Config {
        smtp: none.clone(),
        submission: none,
        data_dir: dir.to_path_buf(),
        hostname: "mx.example.org".into(),
        local_domains: vec!["example.org".into()],
        trusted_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..Config::default()
    }
}

fn args(list: &[&str]) -> SendmailArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: SendmailArgs,
    }
    Cmd::try_parse_from(std::iter::once("sendmail").chain(list.iter().copied())).unwrap().args
}

#[test]
fn cron_style_options_parse() {
    let a = args(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-t"]);
    assert_eq!(a.full_name.as_deref(), Some("CronDaemon"));
    assert!(a.ignore_dots && a.extract);
    assert_eq!(a.options, ["em"]);
    let a = args(&["-oi", "-f", "me@example.org", "a@example.net,b@example.net", "c"]);
    assert_eq!(a.options, ["i"]);
    assert_eq!(a.sender.as_deref(), Some("me@example.org"));
    assert_eq!(a.recipients, ["a@example.net,b@example.net", "c"]);
}

#[test]
fn recipients_come_from_arguments_and_with_t_from_headers_and_bcc_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let input =
        b"To: Bob <bob@example.net>, carol\nCc: dave@example.net\nBcc: eve@example.net,\n  frank@example.net\nSubject: hi\n\nbody\n";
    let (env, body) = prepare(&config(dir.path()), &args(&["-t", "-i", "x@example.com"]), input, true, "cron").unwrap();
    assert_eq!(
        env.recipients,
        ["x@example.com", "bob@example.net", "carol@example.org", "dave@example.net", "eve@example.net", "frank@example.net"]
    );
    assert_eq!(env.sender, "cron@example.org");
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("Bcc") && !text.contains("frank"), "{text}");
    assert!(text.contains("\r\nTo: Bob <bob@example.net>, carol\r\nCc: dave@example.net\r\nSubject: hi\r\n\r\nbody"), "{text}");
    assert!(!text.ends_with("\r\n"), "the final line break is the client's: {text:?}");
    assert!(text.starts_with("From: cron@example.org\r\nDate: ") && text.contains("\r\nMessage-ID: <"), "{text}");
}

#[test]
fn a_lone_dot_ends_the_message_unless_i() {
    let dir = tempfile::tempdir().unwrap();
    let input = b"From: a@example.org\nDate: x\nMessage-ID: <1@x>\n\none\n.\ntwo\n";
    let (_, body) = prepare(&config(dir.path()), &args(&["b@example.org"]), input, false, "u").unwrap();
    assert_eq!(body, b"From: a@example.org\r\nDate: x\r\nMessage-ID: <1@x>\r\n\r\none");
    let (_, body) = prepare(&config(dir.path()), &args(&["b@example.org"]), input, true, "u").unwrap();
    assert!(body.ends_with(b"one\r\n.\r\ntwo"), "{:?}", String::from_utf8_lossy(&body));
}

#[test]
fn dsn_options_and_8bit_bodies_become_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let input = "Subject: caf\u{e9}\n\nna\u{ef}ve\n".as_bytes();
    let (env, body) = prepare(
        &config(dir.path()),
        &args(&["-N", "failure,delay", "-R", "hdrs", "-V", "ENV1", "-F", "The \"Cron\"", "b"]),
        input,
        true,
        "u",
    )
    .unwrap();
    assert_eq!(env.mail_params, [("BODY".into(), "8BITMIME".into()), ("RET".into(), "HDRS".into()), ("ENVID".into(), "ENV1".into())]);
    assert_eq!(env.rcpt_params, [("NOTIFY".to_owned(), "FAILURE,DELAY".to_owned())]);
    assert!(String::from_utf8(body).unwrap().starts_with("From: \"The Cron\" <u@example.org>\r\n"));
}

#[test]
fn no_recipient_is_a_usage_error_and_a_headerless_message_keeps_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let err = prepare(&config(dir.path()), &args(&[]), b"Subject: x\n\ny\n", true, "u").unwrap_err();
    assert_eq!(err.code, EX_USAGE);
    let (_, body) = prepare(&config(dir.path()), &args(&["b"]), b"just a line\n", true, "u").unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("\r\n\r\njust a line"), "{text:?}");
}

#[test]
fn without_a_daemon_the_message_is_queued_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let (env, body) = prepare(&config, &args(&["-i", "bob@example.net", "root"]), b"Subject: queued\n\nhello\n", true, "cron").unwrap();
    submit(&config, env, body).unwrap_or_else(|f| panic!("{}", f.text));
    let (store, recovery) = sipmta_store::Store::open(dir.path()).unwrap();
    assert_eq!(recovery.queued, 1);
    let queued = store.queue().next().unwrap().unwrap();
    assert_eq!(queued.sender, "cron@example.org");
    let rcpts: Vec<_> = queued.recipients.iter().map(|r| (r.address.as_str(), r.route.clone())).collect();
    assert_eq!(rcpts, [("bob@example.net", sipmta_rules::Route::Relay), ("root@example.org", sipmta_rules::Route::Local)]);
    let text = String::from_utf8(store.message(queued.id).unwrap().unwrap()).unwrap();
    assert!(text.starts_with("Received: from mx.example.org"), "{text}");
    assert!(text.contains("Subject: queued\r\n\r\nhello"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_daemon_the_message_goes_to_it_and_a_refusal_is_exit_69() {
    let s = crate::testutil::start(|c| c.local_domains = vec!["example.org".into()]).await;
    let mut config = config(s.dir.path());
    config.smtp.listen = vec![s.smtp];
    let store = s.store.clone();
    let (env, body) = prepare(&config, &args(&["postmaster"]), b"Subject: to the daemon\n\nhi\n", true, "cron").unwrap();
    let sent = config.clone();
    tokio::task::spawn_blocking(move || submit(&sent, env, body)).await.unwrap().unwrap_or_else(|f| panic!("{}", f.text));
    let maildir = s.dir.path().join("maildir/example.org/postmaster/new");
    // Delivered, and then (a moment later) gone from the queue.
    crate::testutil::eventually("the delivery", || std::fs::read_dir(&maildir).is_ok_and(|d| d.count() == 1) && store.queue_len() == 0)
        .await;
    // The daemon's test config trusts nobody: relay is refused, permanently, with the hint.
    let (env, body) = prepare(&config, &args(&["bob@example.net"]), b"Subject: out\n\nhi\n", true, "cron").unwrap();
    let f = tokio::task::spawn_blocking(move || submit(&config, env, body)).await.unwrap().unwrap_err();
    assert_eq!(f.code, EX_UNAVAILABLE, "{}", f.text);
    assert!(f.text.contains("Relay access denied") && f.text.contains("trusted_networks"), "{}", f.text);
    s.stop().await;
}
