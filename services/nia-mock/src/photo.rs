//! The e-certificate photo (電子證照片): a small face-like avatar drawn from the subject's hash, encoded
//! as PNG by hand. The encoder writes stored (uncompressed) deflate blocks: the mock needs a valid,
//! deterministic image, not a small one, and this keeps it free of a compression dependency.

use crate::synthetic::Draw;

pub const WIDTH: u32 = 96;
pub const HEIGHT: u32 = 128;
pub const CONTENT_TYPE: &str = "image/png";

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// The most a stored deflate block can hold (its length is a 16-bit field).
const MAX_STORED_BLOCK: usize = 0xffff;

type Rgb = [u8; 3];

const BACKGROUNDS: &[Rgb] = &[[200, 220, 240], [230, 230, 230], [215, 235, 215], [240, 228, 205], [225, 215, 240]];
const SKIN: &[Rgb] = &[[255, 224, 189], [241, 194, 125], [224, 172, 105], [198, 134, 66], [141, 85, 36]];
const HAIR: &[Rgb] = &[[20, 20, 20], [60, 40, 25], [110, 75, 40], [170, 140, 90], [130, 130, 130]];
const CLOTHES: &[Rgb] = &[[30, 60, 120], [120, 30, 40], [40, 90, 60], [70, 70, 70], [200, 200, 210]];
const FEATURES: Rgb = [40, 30, 30];

/// The avatar's colours, chosen once per subject.
struct Palette {
    background: Rgb,
    skin: Rgb,
    hair: Rgb,
    clothes: Rgb,
    /// Hair line height in pixels above the face centre (short or long hair).
    hair_drop: i32,
}

impl Palette {
    fn of(subject_id: &str) -> Self {
        let mut draw = Draw::new(subject_id, "photo");
        Self {
            background: draw.pick(BACKGROUNDS),
            skin: draw.pick(SKIN),
            hair: draw.pick(HAIR),
            clothes: draw.pick(CLOTHES),
            hair_drop: 8 + draw.below(24) as i32,
        }
    }
}

/// Whether (x, y) lies inside the ellipse centred at (cx, cy) with radii (rx, ry).
fn in_ellipse(x: i32, y: i32, (cx, cy): (i32, i32), (rx, ry): (i32, i32)) -> bool {
    let (dx, dy) = (i64::from(x - cx), i64::from(y - cy));
    let (rx, ry) = (i64::from(rx), i64::from(ry));
    dx * dx * ry * ry + dy * dy * rx * rx <= rx * rx * ry * ry
}

/// The colour of one pixel: features over face over hair over clothes over background.
fn pixel(x: i32, y: i32, p: &Palette) -> Rgb {
    let face = in_ellipse(x, y, (48, 58), (24, 30));
    let eye = in_ellipse(x, y, (39, 54), (3, 3)) || in_ellipse(x, y, (57, 54), (3, 3));
    let mouth = (72..=73).contains(&y) && (40..=56).contains(&x);
    if face && (eye || mouth) {
        return FEATURES;
    }
    if face && !(y < 58 - p.hair_drop && in_ellipse(x, y, (48, 50), (27, 34))) {
        return p.skin;
    }
    if in_ellipse(x, y, (48, 50), (27, 34)) && y < 58 + p.hair_drop {
        return p.hair;
    }
    if in_ellipse(x, y, (48, 150), (46, 50)) {
        return p.clothes;
    }
    if (40..=56).contains(&x) && (80..=104).contains(&y) {
        return p.skin;
    }
    p.background
}

/// The subject's photo as PNG bytes.
pub fn avatar_png(subject_id: &str) -> Vec<u8> {
    let palette = Palette::of(subject_id);
    let mut rgb = Vec::with_capacity((WIDTH * HEIGHT * 3) as usize);
    for y in 0..HEIGHT as i32 {
        for x in 0..WIDTH as i32 {
            rgb.extend_from_slice(&pixel(x, y, &palette));
        }
    }
    encode_rgb(WIDTH, HEIGHT, &rgb)
}

/// PNG of an 8-bit RGB image; `rgb` holds `width * height * 3` bytes, row by row (rows are cut from it
/// as they come, so a short buffer gives a short image, never a panic).
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let row_len = width as usize * 3;
    let mut scanlines = Vec::with_capacity((row_len + 1) * height as usize);
    for row in rgb.chunks(row_len.max(1)).take(height as usize) {
        scanlines.push(0); // filter type: none
        scanlines.extend_from_slice(row);
    }
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, no filter method variants, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = SIGNATURE.to_vec();
    write_chunk(&mut png, b"IHDR", &header);
    write_chunk(&mut png, b"IDAT", &zlib_stored(&scanlines));
    write_chunk(&mut png, b"IEND", &[]);
    png
}

/// length, type, data, CRC-32 of type and data.
fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4) and the Adler-32 trailer.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(MAX_STORED_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + blocks * 5 + 6);
    // CMF 0x78: deflate with a 32K window; FLG 0x01 makes CMF·256 + FLG a multiple of 31.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(MAX_STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        // BFINAL in bit 0, BTYPE 00 (stored); the rest of the byte is padding to the boundary.
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as PNG chunks use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| CRC_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8))
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// Adler-32 (RFC 1950 §8.2). Sums are reduced every 5552 bytes, the most that cannot overflow a u32.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A chunk's type and data.
    pub type Chunk = ([u8; 4], Vec<u8>);

    /// What a PNG decoder would see: the chunks in order, each with its CRC checked.
    pub fn chunks(png: &[u8]) -> Result<Vec<Chunk>, String> {
        let body = png.strip_prefix(&SIGNATURE[..]).ok_or("no PNG signature")?;
        let mut rest = body;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest.get(..4).ok_or("truncated")?.try_into().map_err(|_| "len")?);
            let end = 8 + len as usize;
            let typed = rest.get(4..end).ok_or("truncated chunk")?;
            let crc = u32::from_be_bytes(rest.get(end..end + 4).ok_or("no CRC")?.try_into().map_err(|_| "crc")?);
            if crc32(typed) != crc {
                return Err(format!("bad CRC in {:?}", String::from_utf8_lossy(&typed[..4])));
            }
            let kind: [u8; 4] = typed[..4].try_into().map_err(|_| "type")?;
            out.push((kind, typed[4..].to_vec()));
            rest = &rest[end + 4..];
        }
        Ok(out)
    }

    /// Inflates a zlib stream made only of stored blocks, checking LEN/NLEN and the Adler-32.
    pub fn inflate_stored(stream: &[u8]) -> Result<Vec<u8>, String> {
        let (header, mut rest) = stream.split_at_checked(2).ok_or("no zlib header")?;
        if header[0] & 0x0f != 8 || (u16::from(header[0]) * 256 + u16::from(header[1])) % 31 != 0 {
            return Err("bad zlib header".into());
        }
        let mut out = Vec::new();
        loop {
            let (&flags, after) = rest.split_first().ok_or("truncated block")?;
            if flags & 0b110 != 0 {
                return Err("not a stored block".into());
            }
            let len = u16::from_le_bytes([*after.first().ok_or("len")?, *after.get(1).ok_or("len")?]);
            let nlen = u16::from_le_bytes([*after.get(2).ok_or("nlen")?, *after.get(3).ok_or("nlen")?]);
            if len != !nlen {
                return Err("LEN and NLEN disagree".into());
            }
            out.extend_from_slice(after.get(4..4 + usize::from(len)).ok_or("truncated data")?);
            rest = &after[4 + usize::from(len)..];
            if flags & 1 == 1 {
                break;
            }
        }
        let adler = u32::from_be_bytes(rest.try_into().map_err(|_| "no Adler-32 trailer")?);
        if adler != adler32(&out) {
            return Err("Adler-32 mismatch".into());
        }
        Ok(out)
    }

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(&[]), 1);
        // Long runs of 0xff exercise the deferred modulo.
        let long = vec![0xffu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(&long), ((b << 16) | a) as u32);
    }

    #[test]
    fn zlib_stream_round_trips_across_block_boundaries() {
        for len in [0, 1, MAX_STORED_BLOCK - 1, MAX_STORED_BLOCK, MAX_STORED_BLOCK + 1, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(inflate_stored(&zlib_stored(&data)), Ok(data), "{len}");
        }
    }

    #[test]
    fn avatar_is_a_valid_rgb_png_of_the_stated_size() {
        let png = avatar_png("A123456789");
        let chunks = chunks(&png).unwrap();
        let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, [b"IHDR", b"IDAT", b"IEND"]);
        let ihdr = &chunks[0].1;
        assert_eq!(&ihdr[..8], [0, 0, 0, 96, 0, 0, 0, 128]);
        assert_eq!(&ihdr[8..], [8, 2, 0, 0, 0]);
        let raw = inflate_stored(&chunks[1].1).unwrap();
        assert_eq!(raw.len(), 128 * (1 + 96 * 3));
        assert!(raw.chunks(1 + 96 * 3).all(|row| row[0] == 0));
        // Not a flat colour: the face is there.
        let distinct: std::collections::BTreeSet<&[u8]> =
            raw.chunks(1 + 96 * 3).flat_map(|r| r[1..].chunks(3)).collect();
        assert!(distinct.len() >= 4, "{} colours", distinct.len());
    }

    #[test]
    fn avatars_are_deterministic_and_differ_between_subjects() {
        assert_eq!(avatar_png("A123456789"), avatar_png("A123456789"));
        let distinct: std::collections::BTreeSet<Vec<u8>> =
            ["A123456789", "B200000004", "AC01234567", "A800000014", "F131104093"].map(avatar_png).into();
        assert!(distinct.len() >= 4);
    }
}
