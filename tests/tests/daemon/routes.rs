//! The routing tables administered with the built binary: `sipmta route|keyword|prefix`, once
//! while the daemon runs (through its admin API) and once with it stopped (on the store), on the
//! same data directory. Numbers come in the forms operators write them, full-width included;
//! bad ones are refused with the reason; imports are all or nothing; exports import again.

use std::path::Path;
use std::process::Output;

use crate::support::*;

/// Run the CLI; the exit status, standard output and standard error.
fn run(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out: Output = cli(config, args, "");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Run the CLI and expect success; its standard output.
fn ok(config: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(config, args);
    assert!(success, "sipmta {args:?} failed:\n{stdout}{stderr}");
    stdout
}

/// Run the CLI and expect failure; its standard error, after checking nothing was printed.
fn refused(config: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(config, args);
    assert!(!success, "sipmta {args:?} should have failed:\n{stdout}");
    assert_eq!(stdout, "", "sipmta {args:?}");
    stderr
}

/// The words of the `list` line for `key` (columns are padded to the longest key).
fn columns<'a>(list: &'a str, key: &str) -> Vec<&'a str> {
    let line = list.lines().find(|l| l.split_whitespace().next() == Some(key)).unwrap_or_else(|| panic!("no {key} in:\n{list}"));
    line.split_whitespace().collect()
}

/// Everything an operator does with the tables, on keys of their own (`tag` keeps the two
/// runs apart). The tables may hold other entries already.
fn administer(config: &Path, dir: &Path, tag: &str) {
    let abc = format!("abc@{tag}.example");
    let domain = format!("{tag}.example");

    // add / list / rm, with good and bad numbers.
    let out = ok(config, &["route", "add", &abc.to_uppercase(), "０５０－１２３４－５６７８", "--name", "Kyoto office"]);
    assert_eq!(out, format!("added route {abc} -> +815012345678 (Kyoto office)\n"));
    let err = refused(config, &["route", "add", &domain, "03-1234-5678"]);
    assert_eq!(err, "sipmta: \"03-1234-5678\" is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)\n");
    let err = refused(config, &["route", "add", &format!("@{domain}"), "050-1234-5678"]);
    assert!(err.contains("is not a valid address: the local part before the @ is empty"), "{err}");
    ok(config, &["route", "add", &domain, "+81 80 0000 9999"]);
    let list = ok(config, &["route", "list"]);
    assert_eq!(columns(&list, &abc), [abc.as_str(), "+815012345678", "050-1234-5678", "Kyoto", "office"], "{list}");
    assert_eq!(columns(&list, &domain), [domain.as_str(), "+818000009999", "080-0000-9999"], "{list}");
    let json = ok(config, &["route", "list", "--json"]);
    assert!(json.contains(&format!("\"key\": \"{abc}\"")) && json.contains("\"tel\": \"+815012345678\""), "{json}");
    assert_eq!(ok(config, &["route", "rm", &abc]), format!("removed route {abc} (was +815012345678)\n"));
    assert_eq!(refused(config, &["route", "rm", &abc]), format!("sipmta: no such route: {abc}\n"));

    // An import with three bad lines reports all three and writes nothing.
    let before = ok(config, &["route", "export"]);
    let bad = dir.join(format!("bad-{tag}.csv"));
    let bad_text = format!(
        "key,number,name\n\
         good@{domain},050-0000-0001\n\
         bad@{domain},03-1234-5678\n\
         # a comment\n\
         bad@,050-0000-0002\n\
         good2@{domain},050-0000-0003,\"unterminated\n"
    );
    std::fs::write(&bad, bad_text).unwrap();
    let err = refused(config, &["route", "import", bad.to_str().unwrap()]);
    assert!(err.starts_with(&format!("sipmta: importing {}: 3 bad lines, no route imported:\n", bad.display())), "{err}");
    for line in [
        "  line 3: \"03-1234-5678\" is not a number with a known prefix",
        "  line 5: \"bad@\" is not a valid address: the domain is empty",
        "  line 6: field 3 has an opening quote but no closing one",
    ] {
        assert!(err.contains(line), "{line:?} missing from:\n{err}");
    }
    assert_eq!(ok(config, &["route", "export"]), before, "a failed import must write nothing");

    // A good import, then an export that imports again unchanged.
    let good = dir.join(format!("good-{tag}.csv"));
    let good_text = format!(
        "# {tag}\nsales@{domain},０８０－１１１１－２２２２,\"Sales, 2nd floor\"\n{domain},050-3333-4444\nKYOTO-{tag},050-5555-6666\n"
    );
    std::fs::write(&good, good_text).unwrap();
    let out = ok(config, &["route", "import", good.to_str().unwrap()]);
    assert_eq!(out, format!("imported 3 routes from {}: 2 added, 1 replaced\n", good.display()));
    let exported = ok(config, &["route", "export"]);
    assert!(exported.starts_with("key,number,name\n"), "{exported}");
    assert!(exported.contains(&format!("\nsales@{domain},+818011112222,\"Sales, 2nd floor\"\n")), "{exported}");
    assert!(exported.contains(&format!("\n{domain},+815033334444\n")), "{exported}");
    let again = dir.join(format!("export-{tag}.csv"));
    std::fs::write(&again, &exported).unwrap();
    let entries = exported.lines().count() - 1;
    let out = ok(config, &["route", "import", again.to_str().unwrap()]);
    assert_eq!(out, format!("imported {entries} routes from {}: 0 added, {entries} replaced\n", again.display()));
    assert_eq!(ok(config, &["route", "export"]), exported);

    // Keywords: any case is one entry.
    let kw = format!("KYOTOBRANCHOFFICE-{tag}");
    ok(config, &["keyword", "add", &kw, "050-1234-5678"]);
    let out = ok(config, &["keyword", "add", &kw.to_lowercase(), "050-1234-5679"]);
    assert_eq!(out, format!("replaced keyword {} -> +815012345679 (was +815012345678)\n", kw.to_lowercase()));
    let list = ok(config, &["keyword", "list"]);
    assert_eq!(columns(&list, &kw.to_lowercase()), [kw.to_lowercase().as_str(), "+815012345679", "050-1234-5679"], "{list}");
    ok(config, &["keyword", "rm", &kw]);

    // Prefixes: a new one is usable at once, a removed one refuses numbers under it.
    assert_eq!(ok(config, &["prefix", "add", "056", "8"]), "added prefix 056 + 8 digits\n");
    assert!(ok(config, &["prefix", "list"]).contains("056 + 8 digits\n"));
    let out = ok(config, &["route", "add", &format!("ip@{domain}"), "056-1234-5678"]);
    assert!(out.contains("+815612345678"), "{out}");
    let out = ok(config, &["prefix", "rm", "056"]);
    assert_eq!(out, "removed prefix 056 + 8 digits; 1 route or keyword still holds a number under it\n");
    let err = refused(config, &["route", "add", &format!("ip2@{domain}"), "056-1234-5678"]);
    assert!(err.contains("is not a number with a known prefix (050 + 8 digits, 080 + 8 digits)"), "{err}");
    assert!(refused(config, &["prefix", "add", "56", "8"]).contains("starts with the trunk prefix 0"));
    assert_eq!(refused(config, &["prefix", "rm", "056"]), "sipmta: no such prefix: 056\n");
    ok(config, &["route", "rm", &format!("ip@{domain}")]);
}

#[test]
fn routing_tables_through_the_api_and_on_the_stopped_store() {
    let mut d = Daemon::start("", "");
    let config = d.config.clone();
    let work = tempfile::tempdir().unwrap();
    administer(&config, work.path(), "api");
    // The commands went through the running daemon.
    d.wait_log("routing table imported");
    assert!(d.log().contains("number prefix removed"), "{}", d.log());
    let (code, dir, config) = d.stop();
    assert_eq!(code, 0);

    // Stopped: the same commands open the store, which kept what the daemon wrote.
    assert!(ok(&config, &["route", "list"]).contains("sales@api.example  "));
    administer(&config, work.path(), "store");
    let list = ok(&config, &["route", "list"]);
    assert!(list.contains("sales@api.example") && list.contains("sales@store.example"), "{list}");

    // And a restarted daemon sees what was written without it.
    let d = Daemon::start_with(dir, config.clone());
    assert!(ok(&config, &["route", "export"]).contains("\nsales@store.example,+818011112222,\"Sales, 2nd floor\"\n"));
    let prefixes = ok(&config, &["prefix", "list"]);
    assert_eq!(prefixes, "050 + 8 digits\n080 + 8 digits\n-- 2 prefixes\n");
    drop(d);
}

/// Issue 4's "done when": a table loaded from CSV, `route explain` saying why, and the same
/// decision recorded on the queued message.
#[test]
fn a_loaded_table_decides_and_the_queue_shows_it() {
    let d = Daemon::start("trusted_networks = [\"127.0.0.0/8\"]", "");
    let csv = d.dir.path().join("routes.csv");
    std::fs::write(&csv, "key,number,name\nremote.example,050-1234-5678,Kyoto office\n").unwrap();
    let out = cli(&d.config, &["route", "import", csv.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", transcript(&out));
    let explained = cli(&d.config, &["route", "explain", "bob@remote.example"], "");
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        text.contains("route:     fast path to +815012345678 (050-1234-5678)") && text.contains("Kyoto office"),
        "{}",
        transcript(&explained)
    );
    let sent = d.swaks(&["--to", "bob@remote.example", "--from", "sender@example.org"]);
    let id = queue_id(&transcript(&sent));
    let shown = queue_show(&d.config, &id);
    let r = recipient(&shown, "bob@remote.example");
    assert_eq!(r["route"]["route"], "fast", "{shown:#}");
    assert_eq!(r["route"]["tel"], "+815012345678", "{shown:#}");
    assert!(r["evidence"].as_str().unwrap_or_default().contains("Kyoto office"), "{shown:#}");
}
