//! The route decision at reception (issue 4 item 5): decisions and evidence are stored with
//! each recipient; local recipients stay local.

use sipmta_rules::Route;
use sipmta_rules::number::E164;
use sipmta_store::Table;

use super::*;

fn trusted(c: &mut Config) {
    c.trusted_networks = vec!["192.0.2.0/24".parse().unwrap()];
}

fn fast(tel: &str) -> Route {
    Route::Fast { tel: tel.into() }
}

#[tokio::test]
async fn the_address_table_a_number_in_the_address_and_local_recipients() {
    let h = harness_with(trusted);
    h.store().set_entry(Table::Routes, "remote.example", E164("+815012345678".into()), Some("Kyoto office")).unwrap();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.send_mail("a@example.org", &["bob@remote.example", "postmaster@localhost"], MESSAGE).await;
    let env = h.envelope_of(&r);
    assert_eq!(env.recipients[0].route, fast("+815012345678"));
    let evidence = env.recipients[0].evidence.as_deref().unwrap_or_default();
    assert!(evidence.contains("remote.example") && evidence.contains("Kyoto office"), "{evidence}");
    assert_eq!(env.recipients[1].route, Route::Local);
    assert_eq!(env.recipients[1].evidence.as_deref(), Some("local domain"));
    let r = c.send_mail("a@example.org", &["050-1111-2222@gw.example"], MESSAGE).await;
    let env = h.envelope_of(&r);
    assert_eq!(env.recipients[0].route, fast("+815011112222"));
}

#[tokio::test]
async fn a_keyword_in_the_subject_decides_only_when_one_domain_is_addressed() {
    let h = harness_with(trusted);
    h.store().set_entry(Table::Keywords, "KYOTOBRANCHOFFICE", E164("+815099998888".into()), None).unwrap();
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let body = "Subject: for the kyotobranchoffice team\r\n\r\nhello\r\n";
    let r = c.send_mail("a@example.org", &["x@one.example", "y@one.example"], body).await;
    let env = h.envelope_of(&r);
    assert!(env.recipients.iter().all(|r| r.route == fast("+815099998888")), "{:?}", env.recipients);
    let r = c.send_mail("a@example.org", &["x@one.example", "y@two.example"], body).await;
    let env = h.envelope_of(&r);
    assert!(env.recipients.iter().all(|r| r.route == Route::Relay), "{:?}", env.recipients);
    let evidence = env.recipients[0].evidence.as_deref().unwrap_or_default();
    assert!(evidence.contains("2 domains"), "the evidence says why header evidence was ignored: {evidence}");
}

#[tokio::test]
async fn table_changes_take_effect_for_the_next_message() {
    let h = harness_with(trusted);
    let mut c = h.client(Kind::Smtp, REMOTE);
    c.hello().await;
    let r = c.send_mail("a@example.org", &["bob@later.example"], MESSAGE).await;
    assert_eq!(h.envelope_of(&r).recipients[0].route, Route::Relay);
    h.store().set_entry(Table::Routes, "bob@later.example", E164("+818012345678".into()), None).unwrap();
    let r = c.send_mail("a@example.org", &["bob@later.example"], MESSAGE).await;
    assert_eq!(h.envelope_of(&r).recipients[0].route, fast("+818012345678"));
}
