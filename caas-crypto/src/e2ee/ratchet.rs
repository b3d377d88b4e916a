//! The Double Ratchet (Signal specification, revision 1, without header
//! encryption).
//!
//! * KDF_RK: HKDF-SHA-256 with the root key as salt, 64 bytes out.
//! * KDF_CK: HMAC-SHA-256(chain key, 0x01) is the message key, (…, 0x02) the
//!   next chain key.
//! * ENCRYPT: ChaCha20-Poly1305 with key and nonce derived from the message key
//!   by HKDF (each message key is used once, so a derived nonce is safe);
//!   associated data is the X3DH AD followed by the encoded header.
//!
//! A failed decryption leaves the session unchanged (the spec's "discard
//! changes on exception"), so a forged or replayed message cannot desync it.

use std::collections::VecDeque;
use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Most message keys one incoming message may make us skip (and store).
pub const MAX_SKIP: u32 = 1000;

/// Most skipped message keys kept in total; the oldest are dropped beyond it,
/// so a peer (or the server) cannot make a session grow without bound.
pub const MAX_STORED_SKIPPED: usize = 2000;

/// Previous remote ratchet keys remembered to recognise replays from old chains.
const REMEMBERED_REMOTE_KEYS: usize = 32;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 40;
const TAG_LEN: usize = 16;
const KDF_RK_INFO: &[u8] = b"caas.e2ee.ratchet.root.v1";
const MESSAGE_KEY_INFO: &[u8] = b"caas.e2ee.ratchet.message.v1";

type Secret32 = Zeroizing<[u8; 32]>;

/// A ratchet message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub dh: [u8; 32],
    /// Number of messages in the sender's previous sending chain.
    pub pn: u32,
    /// This message's number in the current sending chain.
    pub n: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..32].copy_from_slice(&self.dh);
        out[32..36].copy_from_slice(&self.pn.to_be_bytes());
        out[36..].copy_from_slice(&self.n.to_be_bytes());
        out
    }
}

/// An encrypted ratchet message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatchetMessage {
    /// The header (authenticated, not encrypted).
    pub header: Header,
    /// Ciphertext ‖ tag.
    pub ciphertext: Vec<u8>,
}

impl RatchetMessage {
    /// `0x01 | dh (32) | pn (u32 BE) | n (u32 BE) | ciphertext ‖ tag`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + HEADER_LEN + self.ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses the binary form; never panics on arbitrary input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "ratchet message";
        let [version, rest @ ..] = bytes else {
            return Err(Error::malformed(WHAT, "empty"));
        };
        if *version != VERSION {
            return Err(Error::malformed(WHAT, "unknown version"));
        }
        let (header, ciphertext) = rest
            .split_first_chunk::<HEADER_LEN>()
            .ok_or_else(|| Error::malformed(WHAT, "truncated header"))?;
        if ciphertext.len() < TAG_LEN {
            return Err(Error::malformed(WHAT, "truncated ciphertext"));
        }
        let (dh, counters) = header.split_at(32);
        let mut d = [0u8; 32];
        d.copy_from_slice(dh);
        let mut pn = [0u8; 4];
        pn.copy_from_slice(&counters[..4]);
        let mut n = [0u8; 4];
        n.copy_from_slice(&counters[4..]);
        Ok(RatchetMessage {
            header: Header {
                dh: d,
                pn: u32::from_be_bytes(pn),
                n: u32::from_be_bytes(n),
            },
            ciphertext: ciphertext.to_vec(),
        })
    }
}

struct SkippedKey {
    dh: [u8; 32],
    n: u32,
    mk: Secret32,
}

/// One side of a Double Ratchet session. Deliberately not `Clone`: two copies
/// encrypting would reuse message keys.
pub struct Session {
    dh_self: StaticSecret,
    dh_self_public: [u8; 32],
    dh_remote: Option<[u8; 32]>,
    previous_remotes: VecDeque<[u8; 32]>,
    root: Secret32,
    send_chain: Option<Secret32>,
    recv_chain: Option<Secret32>,
    send_n: u32,
    recv_n: u32,
    prev_send_n: u32,
    skipped: VecDeque<SkippedKey>,
    ad: Vec<u8>,
}

impl Session {
    /// The initiator (Alice) after X3DH: `sk` is the shared secret, `remote`
    /// the responder's signed prekey, which is also its first ratchet key.
    pub(crate) fn initiator(sk: &[u8; 32], remote: [u8; 32], ad: Vec<u8>) -> Result<Self> {
        let (dh_self, dh_self_public) = super::generate_x25519()?;
        let dh = super::x25519(&dh_self, &remote)?;
        let (root, send_chain) = kdf_rk(sk, &dh[..])?;
        Ok(Session {
            dh_self,
            dh_self_public,
            dh_remote: Some(remote),
            previous_remotes: VecDeque::new(),
            root,
            send_chain: Some(send_chain),
            recv_chain: None,
            send_n: 0,
            recv_n: 0,
            prev_send_n: 0,
            skipped: VecDeque::new(),
            ad,
        })
    }

    /// The responder (Bob) after X3DH: its ratchet key starts as the signed
    /// prekey.
    pub(crate) fn responder(sk: &[u8; 32], signed_prekey: StaticSecret, ad: Vec<u8>) -> Self {
        let dh_self_public = x25519_dalek::PublicKey::from(&signed_prekey).to_bytes();
        Session {
            dh_self: signed_prekey,
            dh_self_public,
            dh_remote: None,
            previous_remotes: VecDeque::new(),
            root: Zeroizing::new(*sk),
            send_chain: None,
            recv_chain: None,
            send_n: 0,
            recv_n: 0,
            prev_send_n: 0,
            skipped: VecDeque::new(),
            ad,
        }
    }

    /// Encrypts the next message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<RatchetMessage> {
        let chain = self
            .send_chain
            .as_ref()
            .ok_or_else(|| Error::param("session cannot send before receiving"))?;
        let (next_chain, mk) = kdf_ck(chain);
        let header = Header {
            dh: self.dh_self_public,
            pn: self.prev_send_n,
            n: self.send_n,
        };
        let next_n = self
            .send_n
            .checked_add(1)
            .ok_or_else(|| Error::param("sending chain exhausted"))?;
        let ciphertext = seal(&mk, &self.ad, &header, plaintext)?;
        self.send_chain = Some(next_chain);
        self.send_n = next_n;
        Ok(RatchetMessage { header, ciphertext })
    }

    /// Decrypts a message: in order, out of order (up to [`MAX_SKIP`] ahead),
    /// or across ratchet steps. Replays, forgeries and tampering are errors
    /// and leave the session unchanged.
    pub fn decrypt(&mut self, message: &RatchetMessage) -> Result<Vec<u8>> {
        let h = &message.header;
        if let Some(pos) = self.skipped.iter().position(|k| k.dh == h.dh && k.n == h.n) {
            let plaintext = open(&self.skipped[pos].mk, &self.ad, h, &message.ciphertext)?;
            // Used once: deleting it is what makes the message unreadable to
            // anyone who later steals this state.
            self.skipped.remove(pos);
            return Ok(plaintext);
        }
        if Some(h.dh) == self.dh_remote && h.n < self.recv_n
            || self.previous_remotes.contains(&h.dh)
        {
            return Err(Error::Replayed { what: "message" });
        }
        let mut next = self.duplicate();
        let plaintext = next.decrypt_new(message)?;
        *self = next;
        Ok(plaintext)
    }

    fn decrypt_new(&mut self, message: &RatchetMessage) -> Result<Vec<u8>> {
        let h = &message.header;
        if Some(h.dh) != self.dh_remote {
            self.skip_until(h.pn)?;
            self.dh_ratchet(&h.dh)?;
        }
        self.skip_until(h.n)?;
        let chain = self
            .recv_chain
            .as_ref()
            .ok_or_else(|| Error::param("no receiving chain"))?;
        let (next_chain, mk) = kdf_ck(chain);
        self.recv_chain = Some(next_chain);
        self.recv_n = self.recv_n.saturating_add(1);
        open(&mk, &self.ad, h, &message.ciphertext)
    }

    fn skip_until(&mut self, until: u32) -> Result<()> {
        let Some(mut chain) = self.recv_chain.take() else {
            return Ok(());
        };
        if until > self.recv_n.saturating_add(MAX_SKIP) {
            return Err(Error::TooManySkippedMessages {
                requested: u64::from(until - self.recv_n),
                limit: u64::from(MAX_SKIP),
            });
        }
        let dh = self.dh_remote.unwrap_or_default();
        while self.recv_n < until {
            let (next, mk) = kdf_ck(&chain);
            chain = next;
            self.skipped.push_back(SkippedKey {
                dh,
                n: self.recv_n,
                mk,
            });
            self.recv_n += 1;
        }
        while self.skipped.len() > MAX_STORED_SKIPPED {
            self.skipped.pop_front();
        }
        self.recv_chain = Some(chain);
        Ok(())
    }

    fn dh_ratchet(&mut self, remote: &[u8; 32]) -> Result<()> {
        if let Some(old) = self.dh_remote.replace(*remote) {
            self.previous_remotes.push_back(old);
            if self.previous_remotes.len() > REMEMBERED_REMOTE_KEYS {
                self.previous_remotes.pop_front();
            }
        }
        self.prev_send_n = self.send_n;
        self.send_n = 0;
        self.recv_n = 0;
        let dh = super::x25519(&self.dh_self, remote)?;
        let (root, recv_chain) = kdf_rk(&self.root, &dh[..])?;
        // The old ratchet private key is dropped (and zeroized) here: after
        // this step nothing can recompute the previous receiving chain.
        let (dh_self, dh_self_public) = super::generate_x25519()?;
        self.dh_self = dh_self;
        self.dh_self_public = dh_self_public;
        let dh = super::x25519(&self.dh_self, remote)?;
        let (root, send_chain) = kdf_rk(&root, &dh[..])?;
        self.root = root;
        self.recv_chain = Some(recv_chain);
        self.send_chain = Some(send_chain);
        Ok(())
    }

    /// A private copy for trial decryption; never handed out (see the type docs).
    fn duplicate(&self) -> Self {
        Session {
            dh_self: self.dh_self.clone(),
            dh_self_public: self.dh_self_public,
            dh_remote: self.dh_remote,
            previous_remotes: self.previous_remotes.clone(),
            root: self.root.clone(),
            send_chain: self.send_chain.clone(),
            recv_chain: self.recv_chain.clone(),
            send_n: self.send_n,
            recv_n: self.recv_n,
            prev_send_n: self.prev_send_n,
            skipped: self
                .skipped
                .iter()
                .map(|k| SkippedKey {
                    dh: k.dh,
                    n: k.n,
                    mk: k.mk.clone(),
                })
                .collect(),
            ad: self.ad.clone(),
        }
    }

    /// Number of stored skipped message keys.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("send_n", &self.send_n)
            .field("recv_n", &self.recv_n)
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

fn kdf_rk(root: &[u8; 32], dh: &[u8]) -> Result<(Secret32, Secret32)> {
    let mut out = Zeroizing::new([0u8; 64]);
    super::hkdf_sha256(root, dh, KDF_RK_INFO, &mut out[..])?;
    let mut new_root = Zeroizing::new([0u8; 32]);
    let mut chain = Zeroizing::new([0u8; 32]);
    new_root.copy_from_slice(&out[..32]);
    chain.copy_from_slice(&out[32..]);
    Ok((new_root, chain))
}

fn kdf_ck(chain: &[u8; 32]) -> (Secret32, Secret32) {
    let key = hmac::Key::new(hmac::HMAC_SHA256, chain);
    let mut mk = Zeroizing::new([0u8; 32]);
    let mut next = Zeroizing::new([0u8; 32]);
    mk.copy_from_slice(hmac::sign(&key, &[0x01]).as_ref());
    next.copy_from_slice(hmac::sign(&key, &[0x02]).as_ref());
    (next, mk)
}

fn message_cipher(mk: &[u8; 32]) -> Result<(LessSafeKey, [u8; 12])> {
    let mut okm = Zeroizing::new([0u8; 44]);
    super::hkdf_sha256(&[0u8; 32], mk, MESSAGE_KEY_INFO, &mut okm[..])?;
    let key =
        UnboundKey::new(&aead::CHACHA20_POLY1305, &okm[..32]).map_err(|_| Error::InvalidKey {
            reason: "message key rejected",
        })?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    Ok((LessSafeKey::new(key), nonce))
}

fn aad(ad: &[u8], header: &Header) -> Vec<u8> {
    [ad, &header.encode()].concat()
}

fn seal(mk: &[u8; 32], ad: &[u8], header: &Header, plaintext: &[u8]) -> Result<Vec<u8>> {
    let (key, nonce) = message_cipher(mk)?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(ad, header)),
        &mut buf,
    )
    .map_err(|_| Error::param("message too long"))?;
    Ok(buf)
}

fn open(mk: &[u8; 32], ad: &[u8], header: &Header, ciphertext: &[u8]) -> Result<Vec<u8>> {
    let (key, nonce) = message_cipher(mk)?;
    let mut buf = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(ad, header)),
            &mut buf,
        )
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(plaintext.to_vec())
}

#[cfg(test)]
mod tests;
