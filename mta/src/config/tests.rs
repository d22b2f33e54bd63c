#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn embedded_defaults_are_valid_and_match_the_issue() {
    let c = Config::default();
    assert_eq!(c.validate(), Vec::<String>::new());
    assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.submission.listen, vec!["127.0.0.1:2587".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.data_dir, PathBuf::from("./sipmta-data"));
    assert_eq!(c.local_domains, vec!["localhost".to_string()]);
    assert!(c.trusted_networks.is_empty());
    assert_eq!(c.admin.listen, vec!["127.0.0.1:8025".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(Config::from_toml("").unwrap(), Config::default());
}

#[test]
fn values_are_read_in_operator_notation() {
    let c = Config::from_toml(
        r#"
        hostname = "mx.example.com"
        local_domains = ["example.com", "example.org"]
        trusted_networks = ["192.0.2.0/24", "2001:db8::/32"]
        [limits]
        max_message_size = "10MiB"
        idle_timeout = "2m"
        [local]
        known_users_only = ["example.org"]
        "#,
    )
    .unwrap();
    assert_eq!(c.limits.max_message_size, ByteSize(10 << 20));
    assert_eq!(c.limits.idle_timeout, Span(Duration::from_secs(120)));
    assert!(c.trusted_networks[0].contains("192.0.2.1".parse().unwrap()));
    assert!(c.known_users_only("EXAMPLE.org"));
    assert!(!c.known_users_only("example.com"));
    assert!(c.is_local_domain("Example.COM"));
}

#[test]
fn every_error_is_reported_at_once_with_its_line() {
    let text = r#"
hostname = "mx.example.com"
typo_key = 1
[limits]
max_recipients = "lots"
idle_timeout = "5 fortnights"
max_sessions = 10
[smtp]
listen = ["not an address"]
[nonsense]
a = 1
b = 2
[local]
known_users_only = ["not-local.example"]
"#;
    let err = Config::from_toml(text).unwrap_err();
    let all = err.to_string();
    assert_eq!(err.errors().len(), 6, "{all}");
    assert!(all.contains("3:1: unknown field `typo_key`"), "{all}");
    assert!(all.contains("5:18:"), "{all}");
    assert!(all.contains("6:16: unknown duration unit"), "{all}");
    assert!(all.contains("9:"), "{all}");
    assert!(all.contains("10:") && all.contains("nonsense"), "{all}");
    assert!(all.contains("known_users_only: \"not-local.example\" is not in local_domains"), "{all}");
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    let err = Config::from_toml("hostname = \"unterminated\n[limits]\n").unwrap_err();
    assert!(err.to_string().contains("1:"), "{err}");
}

#[test]
fn semantic_checks_are_all_reported() {
    let err = Config::from_toml(
        r#"
        hostname = "bad host name"
        [tls]
        cert = "/no/such/cert.pem"
        [smtp]
        listen = ["127.0.0.1:2525"]
        [submission]
        listen = ["127.0.0.1:2525"]
        [limits]
        max_command_line = 100
        max_recipients = 0
        max_auth_failures = 0
        [spool]
        history_retention = "0s"
        db_cache = "1KiB"
        [relay]
        smtp_timeout = "0s"
        tracking_retention = "0s"
        "#,
    )
    .unwrap_err();
    let all = err.to_string();
    for needle in [
        "hostname",
        "tls: set both",
        "already used by smtp.listen",
        "max_command_line",
        "max_recipients",
        "max_auth_failures",
        "relay.smtp_timeout",
        "spool.history_retention",
        "spool.db_cache",
        "relay.tracking_retention",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
}

#[test]
fn missing_tls_files_are_named() {
    let err = Config::from_toml("[tls]\ncert = \"/no/cert.pem\"\nkey = \"/no/key.pem\"\n").unwrap_err();
    assert!(err.to_string().contains("tls.cert: cannot read /no/cert.pem"), "{err}");
    assert!(err.to_string().contains("tls.key: cannot read /no/key.pem"), "{err}");
}

/// `sipmta sendmail` runs for users who may read the config but not the secrets it names: it
/// loads without reading them, and every other check still applies.
#[test]
fn files_the_config_names_are_read_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sipmta.toml");
    let text = "hostname = \"mail.example.com\"\n[tls]\ncert = \"/no/cert.pem\"\nkey = \"/no/key.pem\"\n\
                [relay]\n[[relay.smarthosts]]\nname = \"p\"\nhost = \"smtp.example.net\"\nusername = \"u\"\npassword_file = \"/no/pw\"\n\
                [[registrar.users]]\nnumber = \"050-1234-5678\"\npassword_file = \"/no/pw\"\n\
                [[fastpath.numbers]]\nnumber = \"050-1234-5678\"\npassword_file = \"/no/pw\"\n\
                [[dkim.keys]]\ndomain = \"example.com\"\nselector = \"s1\"\nkey = \"/no/dkim.pem\"\n";
    std::fs::write(&config, text).unwrap();
    let err = Config::load(Some(&config)).unwrap_err();
    for file in ["/no/cert.pem", "/no/key.pem", "/no/dkim.pem"] {
        assert!(err.to_string().contains(file), "{file}: {err}");
    }
    assert_eq!(err.errors().iter().filter(|e| e.contains("/no/pw")).count(), 3, "{err}");
    let loaded = Config::load_with(Some(&config), Files::Skip).unwrap();
    assert_eq!(loaded.dkim.keys.len(), 1);
    let bad = text.replace("mail.example.com", "not a host");
    std::fs::write(&config, bad).unwrap();
    let err = Config::load_with(Some(&config), Files::Skip).unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    assert!(err.to_string().contains("hostname"), "{err}");
}

#[test]
fn no_listener_at_all_is_an_error() {
    let err = Config::from_toml("[smtp]\nlisten = []\n[submission]\nlisten = []\n").unwrap_err();
    assert!(err.to_string().contains("no listener"), "{err}");
}

#[test]
fn the_deploy_example_parses_and_sets_every_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sipmta.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example names certificate files that exist only on a real server; drop that check.
    let mut value: toml::Table = toml::from_str(&text).unwrap();
    value.remove("tls");
    for smarthost in value["relay"]["smarthosts"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let (i, _) = smarthost;
        if let Some(t) =
            value.get_mut("relay").and_then(|r| r.get_mut("smarthosts")).and_then(|s| s.get_mut(i)).and_then(|s| s.as_table_mut())
        {
            t.remove("password_file");
        }
    }
    if let Some(numbers) = value.get_mut("fastpath").and_then(|f| f.get_mut("numbers")).and_then(|n| n.as_array_mut()) {
        for n in numbers.iter_mut().filter_map(|n| n.as_table_mut()) {
            n.remove("password_file");
        }
    }
    if let Some(users) = value.get_mut("registrar").and_then(|f| f.get_mut("users")).and_then(|n| n.as_array_mut()) {
        for u in users.iter_mut().filter_map(|u| u.as_table_mut()) {
            u.remove("password_file");
            u.insert("password".into(), "example".into());
        }
    }
    // The DKIM keys live on the real server too; the test keys stand in for them.
    if let Some(keys) = value.get_mut("dkim").and_then(|d| d.get_mut("keys")).and_then(|k| k.as_array_mut()) {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dkim/testdata");
        for (k, file) in keys.iter_mut().filter_map(|k| k.as_table_mut()).zip(["rsa2048.pkcs8.pem", "ed25519.openssl.pem"]) {
            k.insert("key".into(), testdata.join(file).display().to_string().into());
        }
    }
    let config = Config::from_toml(&toml::to_string(&value).unwrap()).unwrap();
    assert_ne!(config, Config::default());
    // Every key of the defaults appears in the example, so it documents everything.
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    let example: toml::Table = toml::from_str(&text).unwrap();
    for (section, v) in &defaults {
        assert!(example.contains_key(section), "deploy/sipmta.toml lacks `{section}`");
        if let (Some(d), Some(e)) = (v.as_table(), example[section].as_table()) {
            for key in d.keys() {
                assert!(e.contains_key(key), "deploy/sipmta.toml lacks `{section}.{key}`");
            }
        }
    }
}

#[test]
fn a_non_loopback_admin_address_is_refused() {
    let err = Config::from_toml("[admin]\nlisten = [\"0.0.0.0:8025\", \"127.0.0.1:8026\", \"[2001:db8::1]:8025\"]\n").unwrap_err();
    let all = err.to_string();
    assert_eq!(err.errors().len(), 2, "{all}");
    assert!(all.contains("admin.listen: 0.0.0.0:8025 is not a loopback address"), "{all}");
    assert!(all.contains("admin.listen: [2001:db8::1]:8025 is not a loopback address"), "{all}");
}

#[test]
fn loopback_admin_addresses_and_an_empty_list_are_accepted() {
    let c = Config::from_toml("[admin]\nlisten = [\"127.0.0.1:0\", \"[::1]:8025\", \"[::ffff:127.0.0.1]:8027\"]\n").unwrap();
    assert_eq!(c.admin.listen.len(), 3);
    assert!(Config::from_toml("[admin]\nlisten = []\n").unwrap().admin.listen.is_empty());
}

#[test]
fn the_admin_api_cannot_share_an_smtp_address() {
    let err = Config::from_toml("[smtp]\nlisten = [\"127.0.0.1:2525\"]\n[admin]\nlisten = [\"127.0.0.1:2525\"]\n").unwrap_err();
    assert!(err.to_string().contains("admin.listen: 127.0.0.1:2525 is already used by smtp.listen"), "{err}");
}

#[test]
fn ephemeral_ports_may_repeat() {
    let c = Config::from_toml("[smtp]\nlisten = [\"127.0.0.1:0\"]\n[submission]\nlisten = [\"127.0.0.1:0\"]\n").unwrap();
    assert_eq!(c.smtp.listen, c.submission.listen);
}

#[test]
fn the_admin_api_may_share_port_zero_with_the_listeners() {
    let any = "listen = [\"127.0.0.1:0\"]\n";
    let c = Config::from_toml(&format!("[smtp]\n{any}[submission]\n{any}[admin]\n{any}")).unwrap();
    assert_eq!(c.admin.listen, c.smtp.listen);
}

#[test]
fn routing_defaults_and_country_code_checks() {
    let c = Config::default();
    assert_eq!((c.routing.country_code.as_str(), c.routing.scan_limit), ("81", ByteSize(256 << 10)));
    let c = Config::from_toml("[routing]\ncountry_code = \"1\"\nscan_limit = \"1MiB\"\n").unwrap();
    assert_eq!((c.routing.country_code.as_str(), c.routing.scan_limit), ("1", ByteSize(1 << 20)));
    for bad in ["", "+81", "0", "081", "8100", "8a"] {
        let err = Config::from_toml(&format!("[routing]\ncountry_code = {bad:?}\n")).unwrap_err().to_string();
        assert!(err.contains("routing.country_code") && err.contains("1 to 3 digits"), "{bad:?}: {err}");
    }
    let err = Config::from_toml("[routing]\nscan_limit = \"lots\"\n").unwrap_err().to_string();
    assert!(err.contains("2:14: \"lots\" is not a size"), "{err}");
}

#[test]
fn fastpath_numbers_and_protocols_are_checked() {
    let err = Config::from_toml(
        "[fastpath]\ndomain = \"bad domain\"\nprotocols = [\"http\"]\n[[fastpath.numbers]]\nnumber = \"not a number\"\n[[fastpath.numbers]]\nnumber = \"０５０－１２３４－５６７８\"\n",
    )
    .unwrap_err();
    let all = err.to_string();
    for needle in ["fastpath.domain", "\"not a number\" is not a telephone number", "\"smtp\" must be one of them"] {
        assert!(all.contains(needle), "missing {needle:?} in {all}");
    }
    assert!(!all.contains("０５０"), "a full-width national number is a number: {all}");
}

#[test]
fn an_open_registrar_must_stay_on_loopback() {
    let err = Config::from_toml("[registrar]\nlisten = \"192.0.2.1:5060\"\n").unwrap_err();
    assert!(
        err.to_string().contains("registrar.users: required when registrar.listen (192.0.2.1:5060) is not a loopback address"),
        "{err}"
    );
    let err = Config::from_toml("[registrar]\nlisten = \"0.0.0.0:5060\"\n[[registrar.users]]\nnumber = \"050-1234-5678\"\n").unwrap_err();
    let all = err.to_string();
    assert!(all.contains("registrar.listen: 0.0.0.0:5060 is a wildcard"), "{all}");
    assert!(all.contains("set password or password_file"), "{all}");
    assert!(Config::from_toml("[registrar]\nenabled = false\nlisten = \"0.0.0.0:5060\"\n").is_ok(), "a disabled registrar is not checked");
}
