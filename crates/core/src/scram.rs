//! SCRAM-SHA-512 (RFC 5802) as TrueNAS 26+ runs it for API keys (spec §2.7).
//!
//! The server never sees the key: it keeps `StoredKey` and `ServerKey` (see [`ScramKeys`]) and
//! checks a proof bound to both nonces. Only what TrueNAS sends is accepted — no authzid, no
//! `m=` extension, only the `tls-server-end-point` channel binding and only over TLS — because
//! every extra branch of the grammar is attack surface in a pre-authentication parser.
//!
//! The exchange on the server:
//! [`parse_client_first`] → [`ServerFirst::new`] (send `rfc_str`, keep `pending`) →
//! [`verify_client_final`] (send the returned `v=…`). [`ScramClient`] is the other side.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of SHA-512 output, and so of every SCRAM key and proof here.
pub const KEY_LEN: usize = 64;
/// Raw nonce bytes each side contributes (TrueNAS: 32, sent base64-encoded).
pub const NONCE_LEN: usize = 32;
/// Upper bound on any SCRAM message we parse. Real ones are ~250 bytes; the bound keeps a
/// pre-authentication parser from doing work proportional to attacker input.
pub const MAX_MESSAGE_LEN: usize = 2048;
/// Upper bound on the client nonce (base64 of 32 bytes is 44 characters).
pub const MAX_NONCE_LEN: usize = 256;
/// The only channel binding type TrueNAS offers.
pub const CB_TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// Why a SCRAM exchange failed. All of these become `AUTH_ERR` on the wire; the variants exist
/// for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM message too long")]
    TooLong,
    #[error("channel binding is not permitted over a non-TLS transport")]
    ChannelBindingNotPermitted,
    #[error("unsupported channel binding type")]
    UnsupportedChannelBinding,
    #[error("authorization identity is not supported")]
    AuthzidNotSupported,
    #[error("SCRAM extensions are not supported")]
    ExtensionNotSupported,
    #[error("channel binding data does not match")]
    ChannelBindingMismatch,
    #[error("nonce does not match")]
    NonceMismatch,
    #[error("invalid client proof")]
    InvalidProof,
    #[error("iteration count {0} is outside the accepted range")]
    IterationCount(u32),
    #[error("server signature does not match")]
    ServerSignatureMismatch,
    #[error("server reported error: {0}")]
    ServerError(String),
}

/// HMAC-SHA-512 with an infallible constructor: HMAC zero-pads keys up to the block size and
/// hashes longer ones first, so doing that here gives the same MAC without an error path.
pub(crate) fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut block = Zeroizing::new([0u8; 128]);
    if key.len() > block.len() {
        let digest = Sha512::digest(key);
        block[..KEY_LEN].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha512> as hmac::digest::KeyInit>::new(&GenericArray::from(*block));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The SCRAM key triple derived from a salted password (PBKDF2 output).
///
/// `stored_key` and `server_key` are what a server keeps; `client_key` is what a client may
/// cache instead of the raw API key (TrueNAS `api_key.convert_raw_key`). All three are secret
/// enough to be wiped on drop and hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub client_key: [u8; KEY_LEN],
    pub stored_key: [u8; KEY_LEN],
    pub server_key: [u8; KEY_LEN],
}

impl ScramKeys {
    /// ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey),
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub fn from_salted_password(salted_password: &[u8]) -> Self {
        let client_key = hmac_sha512(salted_password, &[b"Client Key"]);
        let stored_key = Sha512::digest(client_key).into();
        let server_key = hmac_sha512(salted_password, &[b"Server Key"]);
        Self {
            client_key,
            stored_key,
            server_key,
        }
    }

    /// Base64 of `client_key`, as `api_key.create` (26+) returns it.
    pub fn client_key_b64(&self) -> String {
        B64.encode(self.client_key)
    }
    /// Base64 of `stored_key`, as the `account_api_key` table stores it.
    pub fn stored_key_b64(&self) -> String {
        B64.encode(self.stored_key)
    }
    /// Base64 of `server_key`, as the `account_api_key` table stores it.
    pub fn server_key_b64(&self) -> String {
        B64.encode(self.server_key)
    }
}

impl Drop for ScramKeys {
    fn drop(&mut self) {
        self.client_key.zeroize();
        self.stored_key.zeroize();
        self.server_key.zeroize();
    }
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramKeys { .. }")
    }
}

/// The gs2 channel binding flag of a client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// `n`: the client does not support channel binding.
    None,
    /// `y`: the client supports it but thinks the server does not. Treated as `n`: this server
    /// never advertises a `-PLUS` mechanism, so there is no downgrade to detect.
    ClientOnly,
    /// `p=tls-server-end-point`: the client requires binding to the server certificate hash.
    TlsServerEndPoint,
}

/// A parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The gs2 header verbatim, e.g. `n,,`; `c=` in the final message must echo it.
    pub gs2_header: String,
    pub binding: ChannelBinding,
    /// Unescaped user name (the part of `n=` before the last `:`).
    pub username: String,
    /// The API key id after the last `:` of `n=`.
    pub api_key_id: i64,
    /// The client nonce (printable ASCII, no `,`).
    pub client_nonce: String,
    /// client-first-message-bare verbatim, for the AuthMessage.
    pub bare: String,
}

fn check_len(msg: &str) -> Result<(), ScramError> {
    if msg.is_empty() {
        return Err(ScramError::Malformed("empty message"));
    }
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(ScramError::TooLong);
    }
    Ok(())
}

/// RFC 5802 `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let esc = rest.get(pos..pos + 3);
        match esc {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The inverse of [`unescape_saslname`].
fn escape_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// RFC 5802 nonce: printable ASCII except `,`.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Splits `x=value` with the expected attribute letter.
fn attr(part: &str, name: char) -> Result<&str, ScramError> {
    let mut chars = part.chars();
    match (chars.next(), chars.next()) {
        (Some(c), Some('=')) if c == name => Ok(&part[2..]),
        (Some('m'), Some('=')) => Err(ScramError::ExtensionNotSupported),
        _ => Err(ScramError::Malformed("unexpected attribute")),
    }
}

/// Parses a client-first message (`n,,n=<user>:<key id>,r=<nonce>`).
///
/// `transport_is_tls` decides whether a `p=` channel binding request is allowed: binding to a
/// certificate that does not exist would be meaningless, and TrueNAS refuses it.
pub fn parse_client_first(msg: &str, transport_is_tls: bool) -> Result<ClientFirst, ScramError> {
    check_len(msg)?;
    // gs2-header = cbind-flag "," [authzid] ","
    let (flag, rest) = msg
        .split_once(',')
        .ok_or(ScramError::Malformed("missing gs2 header"))?;
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("missing gs2 header"))?;
    let binding = match flag {
        "n" => ChannelBinding::None,
        "y" => ChannelBinding::ClientOnly,
        _ => match flag.strip_prefix("p=") {
            Some(name) => {
                if !transport_is_tls {
                    return Err(ScramError::ChannelBindingNotPermitted);
                }
                if name != CB_TLS_SERVER_END_POINT {
                    return Err(ScramError::UnsupportedChannelBinding);
                }
                ChannelBinding::TlsServerEndPoint
            }
            None => return Err(ScramError::Malformed("bad channel binding flag")),
        },
    };
    if !authzid.is_empty() {
        return Err(ScramError::AuthzidNotSupported);
    }
    let gs2_len = flag.len() + 2;

    let mut parts = bare.split(',');
    let user = attr(parts.next().unwrap_or_default(), 'n')?;
    let nonce = attr(
        parts.next().ok_or(ScramError::Malformed("missing nonce"))?,
        'r',
    )?;
    if parts.next().is_some() {
        return Err(ScramError::ExtensionNotSupported);
    }

    let (user, key_id) = user
        .rsplit_once(':')
        .ok_or(ScramError::Malformed("user name lacks :<api key id>"))?;
    let username = unescape_saslname(user)?;
    if username.is_empty() || username.chars().any(char::is_control) {
        return Err(ScramError::Malformed("bad user name"));
    }
    let api_key_id = parse_positive_id(key_id)?;
    if nonce.len() > MAX_NONCE_LEN || !valid_nonce(nonce) {
        return Err(ScramError::Malformed("bad nonce"));
    }

    Ok(ClientFirst {
        gs2_header: msg[..gs2_len].to_owned(),
        binding,
        username,
        api_key_id,
        client_nonce: nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

fn parse_positive_id(s: &str) -> Result<i64, ScramError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScramError::Malformed("bad api key id"));
    }
    match s.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ScramError::Malformed("bad api key id")),
    }
}

/// Server state between server-first and client-final. Holds no key material.
#[derive(Debug, Clone)]
pub struct ScramPending {
    client_first: ClientFirst,
    server_first: String,
    combined_nonce: String,
    cbind_data: Option<Vec<u8>>,
}

impl ScramPending {
    /// The client-first message this exchange answers (user name and key id to look up).
    pub fn client_first(&self) -> &ClientFirst {
        &self.client_first
    }

    /// Supplies the `tls-server-end-point` binding data (the hash of our certificate). Needed
    /// only when the client sent `p=`; without it such an exchange fails.
    pub fn set_channel_binding_data(&mut self, data: Vec<u8>) {
        self.cbind_data = Some(data);
    }
}

/// The server-first message and the state to keep until the client answers.
#[derive(Debug, Clone)]
pub struct ServerFirst {
    /// `r=<client nonce><b64 server nonce>,s=<salt b64>,i=<iterations>`.
    pub rfc_str: String,
    pub pending: ScramPending,
}

impl ServerFirst {
    /// Builds server-first. `salt_b64` is the stored `salt` field verbatim (base64 of the
    /// ASCII salt), so the client derives with exactly the bytes the server did.
    pub fn new(
        client_first: ClientFirst,
        server_nonce: &[u8; NONCE_LEN],
        salt_b64: &str,
        iterations: u32,
    ) -> Self {
        let combined_nonce = format!("{}{}", client_first.client_nonce, B64.encode(server_nonce));
        let rfc_str = format!("r={combined_nonce},s={salt_b64},i={iterations}");
        Self {
            pending: ScramPending {
                client_first,
                server_first: rfc_str.clone(),
                combined_nonce,
                cbind_data: None,
            },
            rfc_str,
        }
    }
}

/// What `c=` must decode to: gs2 header, plus binding data for `p=`.
fn expected_cbind_input(gs2_header: &str, cbind_data: Option<&[u8]>) -> Vec<u8> {
    let mut v = gs2_header.as_bytes().to_vec();
    if let Some(d) = cbind_data {
        v.extend_from_slice(d);
    }
    v
}

struct ClientFinal<'a> {
    without_proof: &'a str,
    cbind_b64: &'a str,
    nonce: &'a str,
    proof: [u8; KEY_LEN],
}

fn parse_client_final(msg: &str) -> Result<ClientFinal<'_>, ScramError> {
    check_len(msg)?;
    let (without_proof, proof_part) = msg
        .rsplit_once(',')
        .ok_or(ScramError::Malformed("missing proof"))?;
    let proof_b64 = attr(proof_part, 'p')?;
    let mut parts = without_proof.split(',');
    let cbind_b64 = attr(parts.next().unwrap_or_default(), 'c')?;
    let nonce = attr(
        parts.next().ok_or(ScramError::Malformed("missing nonce"))?,
        'r',
    )?;
    if parts.next().is_some() {
        return Err(ScramError::ExtensionNotSupported);
    }
    let proof_vec = B64
        .decode(proof_b64)
        .map_err(|_| ScramError::Malformed("bad proof"))?;
    let proof: [u8; KEY_LEN] = proof_vec
        .as_slice()
        .try_into()
        .map_err(|_| ScramError::Malformed("bad proof length"))?;
    Ok(ClientFinal {
        without_proof,
        cbind_b64,
        nonce,
        proof,
    })
}

fn auth_message(bare: &str, server_first: &str, final_without_proof: &str) -> String {
    format!("{bare},{server_first},{final_without_proof}")
}

/// Checks a client-final message against the stored SCRAM material and returns the
/// server-final message `v=<b64 ServerSignature>`.
///
/// The proof check recovers ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and compares
/// H(ClientKey) with StoredKey in constant time.
pub fn verify_client_final(
    pending: ScramPending,
    client_final: &str,
    stored_key: &[u8],
    server_key: &[u8],
) -> Result<String, ScramError> {
    let cf = parse_client_final(client_final)?;
    let cbind = B64
        .decode(cf.cbind_b64)
        .map_err(|_| ScramError::ChannelBindingMismatch)?;
    let binding_data = match pending.client_first.binding {
        ChannelBinding::TlsServerEndPoint => Some(
            pending
                .cbind_data
                .as_deref()
                .ok_or(ScramError::ChannelBindingMismatch)?,
        ),
        ChannelBinding::None | ChannelBinding::ClientOnly => None,
    };
    if cbind != expected_cbind_input(&pending.client_first.gs2_header, binding_data) {
        return Err(ScramError::ChannelBindingMismatch);
    }
    if cf.nonce != pending.combined_nonce {
        return Err(ScramError::NonceMismatch);
    }
    let auth = auth_message(
        &pending.client_first.bare,
        &pending.server_first,
        cf.without_proof,
    );
    let signature = Zeroizing::new(hmac_sha512(stored_key, &[auth.as_bytes()]));
    let mut client_key = Zeroizing::new(cf.proof);
    for (k, s) in client_key.iter_mut().zip(signature.iter()) {
        *k ^= s;
    }
    let computed: [u8; KEY_LEN] = Sha512::digest(client_key.as_slice()).into();
    if !bool::from(computed.as_slice().ct_eq(stored_key)) {
        return Err(ScramError::InvalidProof);
    }
    let server_signature = hmac_sha512(server_key, &[auth.as_bytes()]);
    Ok(format!("v={}", B64.encode(server_signature)))
}

/// What a client authenticates with.
pub enum ClientCredential {
    /// The 64-character key part of `<id>-<key>`; PBKDF2 runs with the server's salt.
    RawKey(Zeroizing<String>),
    /// PBKDF2 output precomputed for the server's salt and iteration count.
    SaltedPassword(Zeroizing<[u8; KEY_LEN]>),
    /// Keys precomputed for the server's salt and iteration count (`convert_raw_key`).
    Keys(ScramKeys),
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::RawKey(_) => "RawKey",
            Self::SaltedPassword(_) => "SaltedPassword",
            Self::Keys(_) => "Keys",
        };
        write!(f, "ClientCredential::{kind}(..)")
    }
}

/// Iteration counts the TrueNAS client library accepts; a server asking for more is refused
/// (it would make the client burn CPU), one asking for fewer is a downgrade.
pub const CLIENT_MIN_ITERATIONS: u32 = 50_000;
pub const CLIENT_MAX_ITERATIONS: u32 = 5_000_000;

/// The client side of the exchange, for tests, the Rust client and the benchmarks.
#[derive(Debug)]
pub struct ScramClient {
    username: String,
    api_key_id: i64,
    credential: ClientCredential,
    client_nonce: String,
    cbind_data: Option<Vec<u8>>,
    min_iterations: u32,
    max_iterations: u32,
}

/// The client after sending client-final: knows which server signature to expect.
#[derive(Clone)]
pub struct ClientFinalState {
    /// The client-final message to send.
    pub message: String,
    expected_server_signature: [u8; KEY_LEN],
}

impl std::fmt::Debug for ClientFinalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFinalState")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// `client_nonce` should be 32 fresh random bytes; it is sent base64-encoded, as TrueNAS does.
    pub fn new(
        username: &str,
        api_key_id: i64,
        credential: ClientCredential,
        client_nonce: &[u8; NONCE_LEN],
    ) -> Self {
        Self {
            username: username.to_owned(),
            api_key_id,
            credential,
            client_nonce: B64.encode(client_nonce),
            cbind_data: None,
            min_iterations: CLIENT_MIN_ITERATIONS,
            max_iterations: CLIENT_MAX_ITERATIONS,
        }
    }

    /// Requests `tls-server-end-point` binding with the given certificate hash.
    pub fn with_tls_server_end_point(mut self, cbind_data: Vec<u8>) -> Self {
        self.cbind_data = Some(cbind_data);
        self
    }

    /// Overrides the accepted iteration range (tests use small counts).
    pub fn with_iteration_bounds(mut self, min: u32, max: u32) -> Self {
        self.min_iterations = min;
        self.max_iterations = max;
        self
    }

    fn gs2_header(&self) -> String {
        match self.cbind_data {
            Some(_) => format!("p={CB_TLS_SERVER_END_POINT},,"),
            None => "n,,".to_owned(),
        }
    }

    fn bare(&self) -> String {
        format!(
            "n={}:{},r={}",
            escape_saslname(&self.username),
            self.api_key_id,
            self.client_nonce
        )
    }

    /// The client-first message (gs2 header + bare).
    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header(), self.bare())
    }

    /// Answers server-first with client-final. Runs PBKDF2 when the credential is a raw key.
    pub fn handle_server_first(&self, server_first: &str) -> Result<ClientFinalState, ScramError> {
        check_len(server_first)?;
        if let Some(err) = server_first.strip_prefix("e=") {
            return Err(ScramError::ServerError(err.to_owned()));
        }
        let mut parts = server_first.split(',');
        let nonce = attr(parts.next().unwrap_or_default(), 'r')?;
        let salt_b64 = attr(
            parts.next().ok_or(ScramError::Malformed("missing salt"))?,
            's',
        )?;
        let iter_s = attr(
            parts
                .next()
                .ok_or(ScramError::Malformed("missing iterations"))?,
            'i',
        )?;
        if parts.next().is_some() {
            return Err(ScramError::ExtensionNotSupported);
        }
        if !valid_nonce(nonce)
            || nonce.len() <= self.client_nonce.len()
            || !nonce.starts_with(&self.client_nonce)
        {
            return Err(ScramError::NonceMismatch);
        }
        if iter_s.is_empty() || !iter_s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScramError::Malformed("bad iteration count"));
        }
        let iterations: u32 = iter_s
            .parse()
            .map_err(|_| ScramError::Malformed("bad iteration count"))?;
        if iterations < self.min_iterations || iterations > self.max_iterations {
            return Err(ScramError::IterationCount(iterations));
        }
        let salt = Zeroizing::new(
            B64.decode(salt_b64)
                .map_err(|_| ScramError::Malformed("bad salt"))?,
        );

        let keys = match &self.credential {
            ClientCredential::RawKey(key) => crate::apikey::derive(key, &salt, iterations),
            ClientCredential::SaltedPassword(sp) => ScramKeys::from_salted_password(&sp[..]),
            ClientCredential::Keys(k) => k.clone(),
        };

        let gs2 = self.gs2_header();
        let cbind = expected_cbind_input(&gs2, self.cbind_data.as_deref());
        let without_proof = format!("c={},r={}", B64.encode(cbind), nonce);
        let auth = auth_message(&self.bare(), server_first, &without_proof);
        let signature = Zeroizing::new(hmac_sha512(&keys.stored_key, &[auth.as_bytes()]));
        let mut proof = Zeroizing::new(keys.client_key);
        for (p, s) in proof.iter_mut().zip(signature.iter()) {
            *p ^= s;
        }
        Ok(ClientFinalState {
            message: format!("{without_proof},p={}", B64.encode(proof.as_slice())),
            expected_server_signature: hmac_sha512(&keys.server_key, &[auth.as_bytes()]),
        })
    }
}

impl ClientFinalState {
    /// Checks server-final (`v=…`); proves the server holds ServerKey, i.e. is the real one.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), ScramError> {
        check_len(server_final)?;
        if let Some(err) = server_final.strip_prefix("e=") {
            return Err(ScramError::ServerError(err.to_owned()));
        }
        let v = attr(server_final, 'v')?;
        let sig = B64
            .decode(v)
            .map_err(|_| ScramError::Malformed("bad server signature"))?;
        if bool::from(sig.as_slice().ct_eq(&self.expected_server_signature)) {
            Ok(())
        } else {
            Err(ScramError::ServerSignatureMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escaping_round_trips() {
        let name = "a,b=c";
        assert_eq!(escape_saslname(name), "a=2Cb=3Dc");
        assert_eq!(unescape_saslname(&escape_saslname(name)).unwrap(), name);
        assert!(unescape_saslname("a=2").is_err());
        assert!(unescape_saslname("a=41").is_err());
        assert!(unescape_saslname("a=").is_err());
    }

    #[test]
    fn hmac_matches_library_for_all_key_lengths() {
        for len in [0usize, 1, 64, 127, 128, 129, 300] {
            let key = vec![0x5au8; len];
            let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(&key).unwrap();
            mac.update(b"message");
            let expected: [u8; 64] = mac.finalize().into_bytes().into();
            assert_eq!(
                hmac_sha512(&key, &[b"mess", b"age"]),
                expected,
                "key length {len}"
            );
        }
    }
}
