//! The data set as the kernels read it, built once at upload: each image's lit pixels, their
//! masks and ranks for pixel_columns.wgsl, and in the file order every batch's pixels already
//! regrouped by pixel.

use mlp_core::Dataset;
use mlp_core::sparse::PixelColumns;

use super::layout::{BufferMaker, padded_to_words};
use crate::error::GpuError;

/// Bits of a lit pixel's entry that hold its index; the byte is above them.
pub(super) const PIXEL_INDEX_BITS: u32 = 24;

/// The pixel index of a lit pixel's entry.
pub(super) fn pixel_of(entry: u32) -> usize {
    (entry & ((1 << PIXEL_INDEX_BITS) - 1)) as usize
}

/// Each image's lit pixels as `lit_pixels` makes them: the entries, and where each image's
/// start.
pub(super) type LitPixels = (Vec<u32>, Vec<u32>);

/// Each image's lit (non-zero) pixels, as sparse_forward.wgsl reads them: one u32 per pixel,
/// its byte in the top 8 bits and its index in the low 24; and where each image's start
/// (one more than there are images). Fails where an image has 2²⁴ pixels or more.
pub(super) fn lit_pixels(set: &Dataset, name: &str) -> Result<LitPixels, GpuError> {
    let pixels = set.pixels();
    if pixels >= 1 << PIXEL_INDEX_BITS {
        return Err(GpuError::ImagesTooLarge {
            set: name.to_string(),
            problem: format!(
                "{pixels} pixels per image, where pixel indices have {PIXEL_INDEX_BITS} bits \
                 (at most {} pixels)",
                (1u32 << PIXEL_INDEX_BITS) - 1
            ),
        });
    }
    let mut entries = Vec::new();
    let mut starts = Vec::with_capacity(set.len() + 1);
    starts.push(0);
    for image in set.lit_pixels() {
        for (pixel, byte) in image {
            entries.push(u32::from(byte) << PIXEL_INDEX_BITS | pixel as u32);
        }
        let count = u32::try_from(entries.len()).map_err(|_| GpuError::ImagesTooLarge {
            set: name.to_string(),
            problem: format!("over {} lit pixels in all (32-bit indices)", u32::MAX),
        })?;
        starts.push(count);
    }
    Ok((entries, starts))
}

/// Which pixels of each image are lit, as pixel_columns.wgsl reads them, from the images'
/// lit pixels (`lit_pixels`): per image, ceil(pixels / 32) words with bit p % 32 of word p / 32
/// set where pixel p is lit; and per image and word, where in the entries the first lit pixel
/// of the word is (or would be).
pub(super) fn pixel_masks(pixels: usize, (entries, starts): &LitPixels) -> (Vec<u32>, Vec<u32>) {
    let words = pixels.div_ceil(32);
    let images = starts.len() - 1;
    let mut masks = vec![0u32; images * words];
    let mut ranks = vec![0u32; images * words];
    for (i, range) in starts.windows(2).enumerate() {
        for &entry in &entries[range[0] as usize..range[1] as usize] {
            let p = pixel_of(entry);
            masks[i * words + p / 32] |= 1 << (p % 32);
        }
        let mut lit = range[0];
        for w in 0..words {
            ranks[i * words + w] = lit;
            lit += masks[i * words + w].count_ones();
        }
    }
    (masks, ranks)
}

/// The lit pixels of each batch of `batch` consecutive images (the last may be shorter),
/// regrouped by pixel as pixel_columns.wgsl regroups one batch: the pairs (row in the batch,
/// byte) of every pixel, rows increasing, one batch after another; and per batch and pixel,
/// (first, length) of its pairs. Each list holds at least one pair (unused where there is
/// nothing to list), so that its buffer can be bound.
pub(super) fn pixel_lists(
    pixels: usize,
    (entries, starts): &LitPixels,
    batch: usize,
) -> (Vec<[u32; 2]>, Vec<[u32; 2]>) {
    let images = starts.len() - 1;
    let lit = |image: usize| &entries[starts[image] as usize..starts[image + 1] as usize];
    let mut columns = Vec::with_capacity(entries.len().max(1));
    let mut spans = Vec::with_capacity(images.div_ceil(batch.max(1)) * pixels);
    let mut by_pixel = PixelColumns::<u8>::default();
    for start in (0..images).step_by(batch.max(1)) {
        let rows = (start + batch).min(images) - start;
        let row_entries = |row: usize| {
            let byte = |&entry: &u32| (pixel_of(entry), (entry >> PIXEL_INDEX_BITS) as u8);
            lit(start + row).iter().map(byte)
        };
        by_pixel.fill(0..pixels, rows, row_entries);
        for p in 0..pixels {
            let (rows, bytes) = by_pixel.pixel(p);
            spans.push([columns.len() as u32, rows.len() as u32]);
            let pairs = rows
                .iter()
                .zip(bytes)
                .map(|(&row, &byte)| [row, u32::from(byte)]);
            columns.extend(pairs);
        }
    }
    if columns.is_empty() {
        columns.push([0, 0]);
    }
    if spans.is_empty() {
        spans.push([0, 0]);
    }
    (columns, spans)
}

/// `words` as bytes, at least one word long, so that the buffer can be bound.
pub(super) fn word_bytes(words: &[u32]) -> Vec<u8> {
    padded_to_words(bytemuck::cast_slice(words))
}

/// One set's images as the kernels read them: the lit pixels, and where each image's start.
pub(super) struct LitImages {
    pub(super) entries: wgpu::Buffer,
    pub(super) starts: wgpu::Buffer,
    pub(super) labels: wgpu::Buffer,
    /// The order the set is read in: row r of a batch is image order[r].
    pub(super) order: wgpu::Buffer,
}

impl LitImages {
    fn upload(
        make: &BufferMaker,
        set: &Dataset,
        name: &str,
        lit: &LitPixels,
    ) -> Result<Self, GpuError> {
        let (entries, starts) = lit;
        make.context.check_storage_size(
            &format!("the lit pixels of the {name}"),
            entries.len() as u64 * 4,
            "use fewer training images (--limit)",
        )?;
        let labels: Vec<u32> = set.labels.iter().map(|&l| u32::from(l)).collect();
        let file_order: Vec<u32> = (0..set.len() as u32).collect();
        let data = BufferMaker::DATA;
        Ok(Self {
            entries: make.init(name, &word_bytes(entries), data),
            starts: make.init(name, bytemuck::cast_slice(starts), data),
            labels: make.init(name, &word_bytes(&labels), data),
            order: make.init(name, &word_bytes(&file_order), data),
        })
    }
}

/// Everything the kernels read of the two data sets, uploaded once.
pub(super) struct DataBuffers {
    pub(super) train: LitImages,
    pub(super) validation: LitImages,
    /// Each training image's lit-pixel mask and ranks (pixel_masks), for pixel_columns.wgsl.
    pub(super) train_masks: wgpu::Buffer,
    pub(super) train_ranks: wgpu::Buffer,
    /// What pixel_columns.wgsl writes: the batch's lit pixels by pixel, and each pixel's span.
    pub(super) pixel_columns: wgpu::Buffer,
    pub(super) pixel_spans: wgpu::Buffer,
    /// The same for every batch of the file order, built here (pixel_lists), where it fits.
    pub(super) cached_pixel_lists: Option<[wgpu::Buffer; 2]>,
    /// Every training image's bytes, four to a u32, for the whole step (step_weights_update.wgsl
    /// finds each pixel's byte there); None for the other schedules, and where they do not fit
    /// in one binding.
    pub(super) train_bytes: Option<wgpu::Buffer>,
}

impl DataBuffers {
    /// Uploads both sets, for batches of up to `max_batch` rows, with the training images'
    /// bytes where `with_bytes`.
    pub(super) fn upload(
        make: &BufferMaker,
        train: &Dataset,
        validation: &Dataset,
        (max_batch, with_bytes): (usize, bool),
    ) -> Result<Self, GpuError> {
        let data = BufferMaker::DATA;
        let train_lit = lit_pixels(train, "training images")?;
        let validation_lit = lit_pixels(validation, "validation images")?;
        let (masks, ranks) = pixel_masks(train.pixels(), &train_lit);
        make.context.check_storage_size(
            "the lit-pixel masks of the training images",
            masks.len() as u64 * 4,
            "use fewer training images (--limit)",
        )?;
        let (columns, spans) = pixel_lists(train.pixels(), &train_lit, max_batch);
        let fits = |pairs: &Vec<[u32; 2]>| make.context.storage_allows(pairs.len() as u64 * 8);
        let cached_pixel_lists = (fits(&columns) && fits(&spans)).then(|| {
            [
                make.init("cached pixel columns", bytemuck::cast_slice(&columns), data),
                make.init("cached pixel spans", bytemuck::cast_slice(&spans), data),
            ]
        });
        // Only the whole step reads them; where they would not fit one binding it is not built.
        let train_bytes = with_bytes.then(|| image_bytes(make, train)).flatten();
        Ok(Self {
            train: LitImages::upload(make, train, "training images", &train_lit)?,
            validation: LitImages::upload(make, validation, "validation images", &validation_lit)?,
            train_masks: make.init("train masks", &word_bytes(&masks), data),
            train_ranks: make.init("train ranks", &word_bytes(&ranks), data),
            pixel_columns: make.zeroed("pixel columns", max_batch * train.pixels() * 8),
            pixel_spans: make.zeroed("pixel spans", train.pixels() * 8),
            cached_pixel_lists,
            train_bytes,
        })
    }
}

/// `set`'s bytes as they are, padded to whole u32s (byte i is bits 8 (i % 4) up of word i / 4,
/// as WGSL reads a little-endian buffer), where they fit in one storage binding.
fn image_bytes(make: &BufferMaker, set: &Dataset) -> Option<wgpu::Buffer> {
    let words = set.images.len().div_ceil(4).max(1);
    if !make.context.storage_allows(words as u64 * 4) {
        return None;
    }
    let mut bytes = set.images.clone();
    bytes.resize(words * 4, 0);
    Some(make.init("train image bytes", &bytes, BufferMaker::DATA))
}
