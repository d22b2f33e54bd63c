//! The users endpoints: list, add, change a password, remove. Each change is flushed before it
//! is answered, so "added" on the CLI means durable.

use sipmta_store::{Store, normalise_name};
use tracing::info;

use super::{Reply, blocking, parse_body};
use crate::admin::{NewPassword, NewUser, UserInfo};

fn check_password(password: &str) -> Result<(), Reply> {
    if password.is_empty() { Err(Reply::error(400, "empty password")) } else { Ok(()) }
}

pub(super) async fn list(store: Store) -> Result<Reply, Reply> {
    let users = blocking(move || store.users()).await?;
    let users: Vec<UserInfo> = users.into_iter().map(|u| UserInfo { name: u.name, created: u.created }).collect();
    Ok(Reply::json(200, &users))
}

pub(super) async fn add(store: Store, body: &[u8]) -> Result<Reply, Reply> {
    let NewUser { name, password } = parse_body(body)?;
    check_password(&password)?;
    let user = blocking(move || {
        store.add_user(&name, &password)?;
        store.flush()?;
        let name = normalise_name(&name)?;
        let created = store.user(&name)?.map_or(0, |u| u.created);
        Ok(UserInfo { name, created })
    })
    .await?;
    info!(user = %user.name, "user added");
    Ok(Reply::json(201, &user))
}

pub(super) async fn set_password(store: Store, name: String, body: &[u8]) -> Result<Reply, Reply> {
    let NewPassword { password } = parse_body(body)?;
    check_password(&password)?;
    let name = blocking(move || {
        store.set_password(&name, &password)?;
        store.flush()?;
        normalise_name(&name)
    })
    .await?;
    info!(user = %name, "user password changed");
    Ok(Reply::empty(204))
}

pub(super) async fn remove(store: Store, name: String) -> Result<Reply, Reply> {
    let name = blocking(move || {
        store.remove_user(&name)?;
        store.flush()?;
        normalise_name(&name)
    })
    .await?;
    info!(user = %name, "user removed");
    Ok(Reply::empty(204))
}
