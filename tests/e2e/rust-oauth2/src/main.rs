//! `rust-oauth2-client TOKEN_URL REVOCATION_URL CA_PEM CLIENT_ID CLIENT_SECRET`: a
//! client_credentials token, then its revocation (RFC 7009), with the `oauth2` crate's
//! defaults. Prints the access token on the first line and `revoked` on the second; any
//! failure exits non-zero with the crate's error.

use std::process::ExitCode;

use oauth2::basic::BasicClient;
use oauth2::{
    reqwest, ClientId, ClientSecret, RevocationUrl, StandardRevocableToken, TokenResponse, TokenUrl,
};

fn run(args: &[String]) -> Result<(), String> {
    let [token_url, revocation_url, ca_pem, client_id, client_secret] = args else {
        return Err("usage: TOKEN_URL REVOCATION_URL CA_PEM CLIENT_ID CLIENT_SECRET".to_owned());
    };
    let ca = std::fs::read(ca_pem).map_err(|e| format!("CA certificate: {e}"))?;
    let http = reqwest::blocking::ClientBuilder::new()
        // The crate's own advice: never follow redirects from a token endpoint.
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    let client = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(client_secret.clone()))
        .set_token_uri(TokenUrl::new(token_url.clone()).map_err(|e| e.to_string())?)
        .set_revocation_url(RevocationUrl::new(revocation_url.clone()).map_err(|e| e.to_string())?);
    let token = client.exchange_client_credentials().request(&http).map_err(|e| format!("token: {e:?}"))?;
    println!("{}", token.access_token().secret());
    let revocable = StandardRevocableToken::AccessToken(token.access_token().clone());
    client
        .revoke_token(revocable)
        .map_err(|e| format!("revocation refused by the crate: {e}"))?
        .request(&http)
        .map_err(|e| format!("revocation: {e:?}"))?;
    println!("revoked");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
