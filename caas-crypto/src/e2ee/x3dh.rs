//! X3DH key agreement (Signal specification, revision 1) with Curve25519 and
//! SHA-256, starting a [`Session`].
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)
//! SK  = HKDF(salt = 0³², IKM = 0xFF³² ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], info = "caas.e2ee.x3dh.v1")
//! AD  = Encode(IK_A) ‖ Encode(IK_B)
//! ```
//!
//! The initiator's first message travels as a [`PreKeyMessage`], which the
//! relay must deliver before the session's later messages.

use zeroize::Zeroizing;

use super::bundle::{IdentityKey, PreKeyBundle};
use super::ratchet::{RatchetMessage, Session};
use super::{LocalDevice, x25519};
use crate::{Error, Result};

const INFO: &[u8] = b"caas.e2ee.x3dh.v1";
const VERSION: u8 = 1;

/// The initiator's first message: what the responder needs to run X3DH,
/// plus the first ratchet message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyMessage {
    /// The initiator's identity.
    pub identity: IdentityKey,
    /// The initiator's ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    /// Which signed prekey of the responder was used.
    pub signed_prekey_id: u32,
    /// Which one-time prekey, if the bundle had one.
    pub one_time_prekey_id: Option<u32>,
    /// The first message.
    pub message: RatchetMessage,
}

/// Runs X3DH against a peer's bundle and encrypts the first message.
///
/// The bundle is validated first (identity binding, signed prekey
/// signature), so a server that substitutes an unsigned prekey is caught.
pub fn initiate(
    local: &LocalDevice,
    bundle: &PreKeyBundle,
    first_message: &[u8],
) -> Result<(Session, PreKeyMessage)> {
    bundle.validate()?;
    let (ephemeral, ephemeral_public) = super::generate_x25519()?;
    let spk = &bundle.signed_prekey.public;
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 5));
    ikm.extend_from_slice(&[0xff; 32]);
    ikm.extend_from_slice(&x25519(local.agreement_secret(), spk)?[..]);
    ikm.extend_from_slice(&x25519(&ephemeral, &bundle.identity.agreement)?[..]);
    ikm.extend_from_slice(&x25519(&ephemeral, spk)?[..]);
    if let Some(otk) = &bundle.one_time_prekey {
        ikm.extend_from_slice(&x25519(&ephemeral, &otk.public)?[..]);
    }
    drop(ephemeral);
    let sk = derive(&ikm)?;
    let ad = associated_data(local.identity(), &bundle.identity);
    let mut session = Session::initiator(&sk, *spk, ad)?;
    let message = session.encrypt(first_message)?;
    Ok((
        session,
        PreKeyMessage {
            identity: *local.identity(),
            ephemeral: ephemeral_public,
            signed_prekey_id: bundle.signed_prekey.id,
            one_time_prekey_id: bundle.one_time_prekey.map(|k| k.id),
            message,
        },
    ))
}

/// Accepts an initiator's first message: runs X3DH from our side, decrypts,
/// and on success destroys the one-time prekey used.
///
/// Rejects an invalid initiator identity, unknown prekey ids (including a
/// one-time prekey already used: a replayed initial message), a replayed
/// ephemeral key, and a first message that does not decrypt; on any error the
/// device is unchanged. Whether to trust the initiator's identity is the
/// caller's decision (compare [`super::SafetyNumber`]s).
pub fn respond(local: &mut LocalDevice, initial: &PreKeyMessage) -> Result<(Session, Vec<u8>)> {
    initial.identity.verify()?;
    if local.initiation_seen(&initial.ephemeral) {
        return Err(Error::Replayed {
            what: "initial message",
        });
    }
    let (_, spk_secret) = local
        .signed_prekey(initial.signed_prekey_id)
        .ok_or_else(|| Error::KeyNotFound {
            key_id: format!("signed prekey {}", initial.signed_prekey_id),
        })?;
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 5));
    ikm.extend_from_slice(&[0xff; 32]);
    ikm.extend_from_slice(&x25519(spk_secret, &initial.identity.agreement)?[..]);
    ikm.extend_from_slice(&x25519(local.agreement_secret(), &initial.ephemeral)?[..]);
    ikm.extend_from_slice(&x25519(spk_secret, &initial.ephemeral)?[..]);
    if let Some(id) = initial.one_time_prekey_id {
        let otk = local
            .one_time_secret(id)
            .ok_or_else(|| Error::KeyNotFound {
                key_id: format!("one-time prekey {id}"),
            })?;
        ikm.extend_from_slice(&x25519(otk, &initial.ephemeral)?[..]);
    }
    let sk = derive(&ikm)?;
    let ad = associated_data(&initial.identity, local.identity());
    let mut session = Session::responder(&sk, spk_secret.clone(), ad);
    let plaintext = session.decrypt(&initial.message)?;
    local.accept_initiation(initial.ephemeral, initial.one_time_prekey_id);
    Ok((session, plaintext))
}

fn derive(ikm: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut sk = Zeroizing::new([0u8; 32]);
    super::hkdf_sha256(&[0u8; 32], ikm, INFO, &mut sk[..])?;
    Ok(sk)
}

fn associated_data(initiator: &IdentityKey, responder: &IdentityKey) -> Vec<u8> {
    [initiator.encode(), responder.encode()].concat()
}

impl PreKeyMessage {
    /// `0x01 | identity signing (32) | agreement (32) | signature (64) |
    /// ephemeral (32) | signed prekey id (u32 BE) | has one-time (0/1) |
    /// [one-time id (u32 BE)] | ratchet message`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.identity.signing);
        out.extend_from_slice(&self.identity.agreement);
        out.extend_from_slice(&self.identity.signature);
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.signed_prekey_id.to_be_bytes());
        match self.one_time_prekey_id {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.message.to_bytes());
        out
    }

    /// Parses the binary form; never panics on arbitrary input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "prekey message";
        let truncated = || Error::malformed(WHAT, "truncated");
        let [version, rest @ ..] = bytes else {
            return Err(truncated());
        };
        if *version != VERSION {
            return Err(Error::malformed(WHAT, "unknown version"));
        }
        let (signing, rest) = rest.split_first_chunk::<32>().ok_or_else(truncated)?;
        let (agreement, rest) = rest.split_first_chunk::<32>().ok_or_else(truncated)?;
        let (signature, rest) = rest.split_first_chunk::<64>().ok_or_else(truncated)?;
        let (ephemeral, rest) = rest.split_first_chunk::<32>().ok_or_else(truncated)?;
        let (spk_id, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let (flag, rest) = rest.split_first().ok_or_else(truncated)?;
        let (one_time_prekey_id, rest) = match flag {
            0 => (None, rest),
            1 => {
                let (id, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
                (Some(u32::from_be_bytes(*id)), rest)
            }
            _ => return Err(Error::malformed(WHAT, "bad one-time prekey flag")),
        };
        Ok(PreKeyMessage {
            identity: IdentityKey {
                signing: *signing,
                agreement: *agreement,
                signature: *signature,
            },
            ephemeral: *ephemeral,
            signed_prekey_id: u32::from_be_bytes(*spk_id),
            one_time_prekey_id,
            message: RatchetMessage::from_bytes(rest)?,
        })
    }
}
