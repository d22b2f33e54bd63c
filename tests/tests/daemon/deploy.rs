//! The deploy files as an operator uses them (deploy/INSTALL.md), so they cannot drift from the
//! daemon and its CLI: the systemd unit's `ExecStart`, run as written with only its config path
//! swapped for a test copy of deploy/sipmta.toml, serves SMTP and stops cleanly on SIGTERM;
//! every `sipmta` command the guide shows exists, with the options it uses;
//! `systemd-analyze verify` accepts the unit; the Dockerfile builds `--locked` and runs as an
//! unprivileged user.

use std::collections::VecDeque;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::sip::free_port;
use crate::support::smtp::Raw;
use crate::support::*;

fn deploy_file(name: &str) -> String {
    let path = workspace().join("deploy").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every value of `key=` in the unit's `[Service]` section, in order.
fn service(unit: &str, key: &str) -> Vec<String> {
    let mut in_service = false;
    let mut values = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            values.push(v.trim().to_owned());
        }
    }
    values
}

/// The argv of the unit's `ExecStart` or `ExecReload`, which must be set once, plainly.
fn exec_line(unit: &str, key: &str) -> Vec<String> {
    let values = service(unit, key);
    assert_eq!(values.len(), 1, "deploy/sipmta.service must set {key} once: {values:?}");
    let line = &values[0];
    assert!(line.starts_with('/'), "{key} must start with an absolute path, without a systemd prefix (-, @, +, !): {line}");
    assert!(!line.contains(['"', '\'', '\\', ';']), "{key} uses quoting this test does not parse: {line}");
    line.split_whitespace().map(str::to_owned).collect()
}

/// `text` with `key = ...` in `[section]` ("" for the top level) replaced by `key = value`.
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut current = String::new();
    let mut done = false;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(['[', ']']).to_owned();
        } else if !done && current == section && t.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            done = true;
            out.push_str(&format!("{key} = {value}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "deploy/sipmta.toml has no `{key}` in [{section}] any more: update this test");
    out
}

/// The string value of `key` in `[section]`.
fn get(text: &str, section: &str, key: &str) -> String {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).to_owned();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return v.trim().trim_matches('"').to_owned();
        }
    }
    panic!("deploy/sipmta.toml has no `{key}` in [{section}]");
}

/// Seconds in a systemd time span or a sipmta duration of one unit: `90s`, `2min`, `1m`, `1h`.
fn seconds(span: &str) -> u64 {
    let digits = span.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("cannot read the duration {span:?}"));
    match &span[digits.len()..] {
        "s" | "sec" => n,
        "m" | "min" => n * 60,
        "h" => n * 3600,
        unit => panic!("cannot read the duration {span:?} (unit {unit:?})"),
    }
}

/// deploy/sipmta.toml made runnable here, under `root`: its /etc/sipmta files exist (a
/// certificate from openssl, DKIM keys from `sipmta dkim keygen` run as INSTALL.md runs it,
/// the password files), data_dir is `root/var/lib/sipmta`, the listeners are on loopback port
/// 0. The fast path and the built-in registrar stay on as in the example: the registrar moves
/// to a free loopback port and the fast path registers the example's number with it.
fn example_config(root: &Path) -> PathBuf {
    require("openssl");
    let example = deploy_file("sipmta.toml");
    assert_eq!(get(&example, "", "data_dir"), "/var/lib/sipmta", "the unit's StateDirectory=sipmta is /var/lib/sipmta");
    let etc = root.join("etc/sipmta");
    let mut text = example
        .replace("/etc/sipmta/", &format!("{}/", etc.display()))
        .replace("data_dir = \"/var/lib/sipmta\"", &format!("data_dir = \"{}\"", root.join("var/lib/sipmta").display()));
    for section in ["smtp", "submission", "submissions", "admin"] {
        text = set(&text, section, "listen", "[\"127.0.0.1:0\"]");
    }
    let registrar = format!("\"127.0.0.1:{}\"", free_port());
    text = set(&text, "registrar", "listen", &registrar);
    text = set(&text, "fastpath", "proxy", &registrar);
    text = set(&text, "fastpath", "sip_listen", "\"127.0.0.1:0\"");
    text = set(&text, "fastpath", "stream_listen", "\"127.0.0.1:0\"");
    text = set(&text, "fastpath", "advertise", "\"127.0.0.1\"");
    // The example wants 1 GiB free; a test machine's disk need not have it.
    text = set(&text, "spool", "min_free_space", "\"1MiB\"");

    for file in text.lines().filter_map(|l| l.trim().strip_prefix("password_file = \"")).map(|v| &v[..v.find('"').unwrap()]) {
        fs::create_dir_all(Path::new(file).parent().unwrap()).unwrap();
        fs::write(file, "a test password\n").unwrap();
    }
    let (cert, key) = (get(&text, "tls", "cert"), get(&text, "tls", "key"));
    fs::create_dir_all(Path::new(&cert).parent().unwrap()).unwrap();
    let tls = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .arg("-subj")
        .arg(format!("/CN={}", get(&text, "", "hostname")))
        .args(["-keyout", key.as_str(), "-out", cert.as_str()])
        .output()
        .unwrap();
    assert!(tls.status.success(), "{}", transcript(&tls));
    // INSTALL.md step 6: keygen in /etc/sipmta/dkim writes the files the example names.
    let dkim = etc.join("dkim");
    fs::create_dir_all(&dkim).unwrap();
    for args in [&["dkim", "keygen", "example.com", "s2026"][..], &["dkim", "keygen", "example.com", "e2026", "--algorithm", "ed25519"]] {
        let out = Command::new(bin()).args(args).current_dir(&dkim).env_remove("SIPMTA_CONFIG").output().unwrap();
        assert!(out.status.success(), "{}", transcript(&out));
    }

    let config = etc.join("sipmta.toml");
    fs::write(&config, text).unwrap();
    config
}

/// Whether a log line, JSON (as the example configures) or text, is the event `message`.
fn said(line: &str, message: &str) -> bool {
    line.contains(&format!("\"message\":\"{message}\""))
        || line.split_once(&format!(" INFO {message}")).is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with(' '))
}

/// A daemon started as systemd starts it: the unit's ExecStart, from `/`, with a bare
/// environment; killed if a test fails half-way.
struct Started {
    root: tempfile::TempDir,
    child: Child,
    log: PathBuf,
    smtp: SocketAddr,
}

impl Started {
    /// Runs ExecStart of deploy/sipmta.service with its config path replaced by `config(root)`,
    /// and waits for "ready".
    fn from_unit(config: impl FnOnce(&Path) -> PathBuf) -> Started {
        let unit = deploy_file("sipmta.service");
        let argv = exec_line(&unit, "ExecStart");
        assert_eq!(Path::new(&argv[0]).file_name(), Some("sipmta".as_ref()), "ExecStart runs {}", argv[0]);
        let at = argv.iter().position(|a| a == "--config" || a == "-c").expect("ExecStart must name its config (--config)") + 1;
        let guide = deploy_file("INSTALL.md");
        assert!(guide.contains(&format!("sipmta.toml {}", argv[at])), "INSTALL.md does not install the config at {}", argv[at]);

        let root = tempfile::tempdir().unwrap();
        let file = config(root.path());
        let check = Command::new(bin()).arg("check-config").arg(&file).output().unwrap();
        assert!(check.status.success(), "{}", transcript(&check));
        assert!(String::from_utf8_lossy(&check.stdout).contains(": ok"), "{}", transcript(&check));

        let mut args = argv[1..].to_vec();
        args[at - 1] = file.display().to_string();
        let log = root.path().join("serve.log");
        let child = Command::new(bin())
            .args(&args)
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut started = Started { root, child, log, smtp: ([0, 0, 0, 0], 0).into() };
        started.wait_line("ready", |l| said(l, "ready"));
        let log = started.log();
        let line = log.lines().find(|l| l.contains("smtp listener on ")).unwrap_or_else(|| panic!("no smtp listener:\n{log}"));
        let addr = &line[line.find("smtp listener on ").unwrap() + "smtp listener on ".len()..];
        started.smtp = addr[..addr.find(['"', ' ']).unwrap_or(addr.len())].parse().unwrap();
        started
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) {
        wait_for(what, || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sipmta exited ({status}) before logging {what:?}:\n{}", self.log());
            }
            self.log().lines().any(&matches)
        });
    }

    /// `kill -SIGNAL` the daemon, as systemd and its ExecReload do.
    fn signal(&self, signal: &str) {
        let out = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).output().unwrap();
        assert!(out.status.success(), "{}", transcript(&out));
    }

    /// SIGTERM, as `systemctl stop`; the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let mut status = None;
        wait_for("sipmta to exit after SIGTERM", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    /// The greeting and EHLO answer of the SMTP listener; QUIT afterwards.
    fn greet(&self) -> (String, String) {
        let (mut smtp, greeting) = Raw::connect(self.smtp);
        let ehlo = smtp.cmd("EHLO client.test");
        assert!(smtp.cmd("QUIT").starts_with("221"));
        (greeting, ehlo)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_units_exec_start_serves_the_example_config_and_stops_on_sigterm() {
    let mut d = Started::from_unit(example_config);
    let (greeting, ehlo) = d.greet();
    assert!(greeting.starts_with("220 mail.example.com "), "{greeting}");
    // The certificate named in [tls] was loaded.
    assert!(ehlo.starts_with("250") && ehlo.contains("STARTTLS"), "{ehlo}");
    let log = d.log();
    assert!(log.lines().any(|l| said(l, "registered")), "the example's number did not register:\n{log}");

    let status = d.stop();
    let log = d.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.lines().any(|l| said(l, "stopped")), "{log}");
    // A clean stop removes the admin token (a crash leaves it, and the CLI copes).
    assert!(!d.root.path().join("var/lib/sipmta/admin.token").exists(), "{log}");
}

#[test]
fn the_unit_runs_as_sipmta_in_its_state_directory_and_outlasts_the_shutdown_grace() {
    let unit = deploy_file("sipmta.service");
    // Type=exec because sipmta does not speak sd_notify: Type=notify would time out.
    for (key, value) in [
        ("Type", "exec"),
        ("User", "sipmta"),
        ("StateDirectory", "sipmta"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
    ] {
        assert_eq!(service(&unit, key), [value], "{key}");
    }
    let example = deploy_file("sipmta.toml");
    let timeout = seconds(&service(&unit, "TimeoutStopSec")[0]);
    let grace = seconds(&get(&example, "limits", "shutdown_grace"));
    // 30 s is the default shutdown_grace; the stop also waits for in-flight deliveries.
    assert!(timeout > grace.max(30) + 30, "TimeoutStopSec ({timeout} s) must leave room beyond shutdown_grace ({grace} s)");

    let reload = exec_line(&unit, "ExecReload");
    assert_eq!(Path::new(&reload[0]).file_name(), Some("kill".as_ref()), "{reload:?}");
    assert_eq!(reload[1..], ["-HUP", "$MAINPID"]);
}

/// The `sipmta` invocation in one shell command, after launchers (`runuser -u sipmta --`,
/// `sudo`, `exec`, `docker exec NAME`, `VAR=value`): its arguments, or `None` for another
/// program.
fn sipmta_args(command: &str) -> Option<Vec<String>> {
    let mut t: VecDeque<&str> = command.split_whitespace().collect();
    loop {
        match *t.front()? {
            "sudo" | "runuser" => {
                t.pop_front();
                while let Some(option) = t.front().copied().filter(|o| o.starts_with('-')) {
                    t.pop_front();
                    match option {
                        "-u" => {
                            t.pop_front();
                        }
                        "--" => break,
                        _ => {}
                    }
                }
            }
            "exec" => {
                t.pop_front();
            }
            "docker" if t.get(1) == Some(&"exec") => {
                t.drain(..2);
                while t.front().is_some_and(|o| o.starts_with('-')) {
                    t.pop_front();
                }
                t.pop_front();
            }
            word if word.contains('=') && !word.starts_with('-') => {
                t.pop_front();
            }
            _ => break,
        }
    }
    let program = t.pop_front()?;
    (program == "sipmta" || program.ends_with("/bin/sipmta")).then(|| t.into_iter().map(str::to_owned).collect())
}

/// Every `sipmta` command in the ```sh blocks of `guide`, as its arguments.
fn guide_commands(guide: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut line = String::new();
    for raw in guide.lines() {
        if let Some(info) = raw.trim_start().strip_prefix("```") {
            in_sh = !in_sh && info.trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        // Comments start at a `#` after a blank (or open the line, as `#!/bin/sh` does).
        let code = match raw.find(" #") {
            _ if raw.trim_start().starts_with('#') => "",
            Some(at) => &raw[..at],
            None => raw,
        };
        if let Some(continued) = code.trim_end().strip_suffix('\\') {
            line.push_str(continued);
            continue;
        }
        line.push_str(code);
        commands.extend(line.split(['|', '&', ';']).filter_map(sipmta_args));
        line.clear();
    }
    commands
}

#[test]
fn every_sipmta_command_in_install_md_exists_with_its_options() {
    let commands = guide_commands(&deploy_file("INSTALL.md"));
    let shown: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
    for expected in
        ["check-config", "user add", "dkim keygen", "dkim record", "queue list", "route add", "sendmail", "log 6A1F0B2C00000007"]
    {
        assert!(shown.iter().any(|c| c.contains(expected)), "no `sipmta {expected}` found in INSTALL.md: {shown:#?}");
    }
    for args in &commands {
        // The global --config FILE may come first; the subcommand words follow, up to the
        // first argument that is not a plain word (an address, a path, a number).
        let mut rest = args.as_slice();
        while let [option, _, tail @ ..] = rest
            && (option == "--config" || option == "-c")
        {
            rest = tail;
        }
        let words =
            rest.iter().take_while(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !a.starts_with('-'));
        let path: Vec<&String> = words.collect();
        let help = Command::new(bin()).args(&path).arg("--help").env_remove("SIPMTA_CONFIG").output().unwrap();
        assert!(help.status.success(), "INSTALL.md runs `sipmta {}`, which the CLI does not know:\n{}", args.join(" "), transcript(&help));
        let text = String::from_utf8_lossy(&help.stdout);
        for option in rest.iter().filter(|a| a.starts_with("--")) {
            let name = option.split('=').next().unwrap();
            assert!(
                text.split_whitespace().any(|word| word.trim_end_matches(',') == name),
                "INSTALL.md runs `sipmta {}`; `sipmta {} --help` has no {name}",
                args.join(" "),
                rest[..path.len()].join(" ")
            );
        }
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("systemd-analyze").is_file()));
    if !found {
        eprintln!("note: systemd-analyze is not installed, so deploy/sipmta.service was not verified");
        return;
    }
    let unit = deploy_file("sipmta.service");
    let exec = &exec_line(&unit, "ExecStart")[0];
    // verify checks that the binary exists: point ExecStart at the one built here.
    let built = std::path::absolute(bin()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sipmta.service");
    fs::write(&file, unit.replacen(&format!("ExecStart={exec} "), &format!("ExecStart={} ", built.display()), 1)).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&file).output().unwrap();
    let text = transcript(&out);
    assert!(out.status.success(), "{text}");
    // An unknown directive or a bad value is only a warning naming the file: none allowed.
    let complaints: Vec<&str> = text.lines().filter(|l| l.contains("sipmta.service")).collect();
    assert!(complaints.is_empty(), "{text}");
}

#[test]
fn the_dockerfile_builds_locked_and_runs_as_an_unprivileged_user() {
    let dockerfile = deploy_file("Dockerfile").replace("\\\n", " ");
    let build = dockerfile.lines().find(|l| l.starts_with("RUN") && l.contains("cargo build")).expect("no RUN cargo build");
    for flag in ["--release", "--locked", "-p sipmta"] {
        assert!(build.contains(flag), "the build lacks {flag}: {build}");
    }
    let runtime = &dockerfile[dockerfile.rfind("\nFROM ").expect("no runtime stage")..];
    let user = runtime.lines().filter_map(|l| l.strip_prefix("USER ")).next_back().expect("the runtime stage sets no USER");
    let user = user.trim().split(':').next().unwrap();
    assert!(user != "root" && user != "0", "the runtime stage runs as {user}");
    let cmd = runtime.lines().find(|l| l.starts_with("CMD ")).expect("no CMD");
    assert!(cmd.contains("\"serve\"") && cmd.contains("\"/etc/sipmta/sipmta.toml\""), "{cmd}");
    // The build context leaves out build output and test data.
    let ignore = fs::read_to_string(workspace().join(".dockerignore")).unwrap();
    for entry in ["target", "fuzz/corpus", "bench/results"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lacks {entry}");
    }
}

#[test]
fn exec_reload_keeps_the_daemon_serving() {
    let mut d = Started::from_unit(example_config);
    let unit = deploy_file("sipmta.service");
    let reload = exec_line(&unit, "ExecReload");
    let pid = d.child.id().to_string();
    let args: Vec<&str> = reload[1..].iter().map(|a| if a == "$MAINPID" { pid.as_str() } else { a.as_str() }).collect();
    let out = Command::new(&reload[0]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    let greeting = Raw::try_connect(d.smtp, Duration::from_secs(10)).map(|(_, greeting)| greeting);
    assert!(greeting.as_ref().is_ok_and(|g| g.starts_with("220 ")), "after ExecReload: {greeting:?}\n{}", d.log());
    let status = d.stop();
    assert!(status.success(), "{status}:\n{}", d.log());
}

#[test]
fn the_example_listens_on_the_ipv4_and_ipv6_wildcards_together() {
    // The example's own [smtp] listen list, on a free port instead of 25.
    let listen = get(&deploy_file("sipmta.toml"), "smtp", "listen").replace(":25\"", &format!(":{}\"", free_port()));
    assert!(listen.contains("0.0.0.0:") && listen.contains("[::]:"), "{listen}");
    let d = Started::from_unit(|root| {
        let config = example_config(root);
        let text = set(&fs::read_to_string(&config).unwrap(), "smtp", "listen", &listen);
        fs::write(&config, text).unwrap();
        config
    });
    let (greeting, _) = d.greet();
    assert!(greeting.starts_with("220 "), "{greeting}");
}
