//! A batch's lit pixels regrouped by pixel, as the first layer's gradient reads them: filled
//! each step ([`PixelColumns`]) or packed to be kept for the file order's later epochs
//! ([`PackedPixelColumns`]).

use std::ops::Range;

use super::SparseImages;

/// One batch's non-zero pixels regrouped by pixel (compressed sparse columns of A0), so that
/// a pixel's gradient row can be summed in registers and stored once. Both backends regroup
/// through it: the CPU each step, with normalised values, the GPU once per batch of the file
/// order at upload, with bytes (`T` is what an entry carries).
#[derive(Debug, Clone, Default)]
pub struct PixelColumns<T = f32> {
    /// Room per pixel: the batch's rows, as a pixel is lit at most once per image. A slot per
    /// row lets `fill` place each entry in one pass, without counting first: a pass that
    /// counted made the seed epoch about 10 % slower (docs/performance.md).
    capacity: usize,
    /// How many entries pixel p has; they are at `p * capacity..` of `rows` and `values`.
    counts: Vec<u32>,
    /// The batch row of each entry, increasing within a pixel.
    rows: Vec<u32>,
    values: Vec<T>,
}

impl<T: Copy + Default> PixelColumns<T> {
    /// Regroups by pixel the entries (pixel, value) that `row_entries(r)` lists for each batch
    /// row r of `0..rows`, each at most once per row and all of them in `pixels`: each goes
    /// straight to the next free slot of its pixel. Entry p is then pixel `pixels.start + p`.
    pub fn fill<I>(&mut self, pixels: Range<usize>, rows: usize, row_entries: impl Fn(usize) -> I)
    where
        I: Iterator<Item = (usize, T)>,
    {
        let first = pixels.start;
        self.capacity = rows;
        self.counts.clear();
        self.counts.resize(pixels.len(), 0);
        let room = pixels.len() * rows;
        if self.rows.len() < room {
            self.rows.resize(room, 0);
            self.values.resize(room, T::default());
        }
        for row in 0..rows {
            for (pixel, value) in row_entries(row) {
                debug_assert!(pixels.contains(&pixel), "pixel {pixel} outside {pixels:?}");
                let count = &mut self.counts[pixel - first];
                let slot = (pixel - first) * self.capacity + *count as usize;
                self.rows[slot] = row as u32;
                self.values[slot] = value;
                *count += 1;
            }
        }
    }

    /// How many pixels were regrouped.
    pub fn pixels(&self) -> usize {
        self.counts.len()
    }

    /// Pixel `pixel`'s entries: the batch rows where it is lit, and its values there.
    pub fn pixel(&self, pixel: usize) -> (&[u32], &[T]) {
        let start = pixel * self.capacity;
        let range = start..start + self.counts[pixel] as usize;
        (&self.rows[range.clone()], &self.values[range])
    }
}

/// A batch's lit pixels by pixel, as the first layer's gradient reads them: pixel p's batch
/// rows (increasing) and its values there, p counted from the first pixel held.
pub trait PixelEntries: Sync {
    fn pixel(&self, pixel: usize) -> (&[u32], &[f32]);
}

impl PixelEntries for PixelColumns<f32> {
    fn pixel(&self, pixel: usize) -> (&[u32], &[f32]) {
        PixelColumns::pixel(self, pixel)
    }
}

/// [`PixelColumns`] packed with no free slots, to be kept: a pixel's entries are
/// `starts[p]..starts[p + 1]`. Packed, an MNIST batch of 100 (about 15,000 lit pixels) takes
/// about 123 KB, against 628 KB with a slot per row, which is what lets the fast backend keep
/// every batch of the file order (about 74 MB for MNIST's 60,000 images, 19.1 % of whose
/// pixels are lit).
#[derive(Debug, Clone, Default)]
pub struct PackedPixelColumns {
    starts: Vec<u32>,
    rows: Vec<u32>,
    values: Vec<f32>,
}

impl PackedPixelColumns {
    pub fn packed(columns: &PixelColumns<f32>) -> Self {
        Self::packed_in_turn(std::slice::from_ref(columns))
    }

    /// The pixels of each of `parts` one after another: parts that regrouped consecutive
    /// ranges of pixels packed as one.
    pub fn packed_in_turn(parts: &[PixelColumns<f32>]) -> Self {
        let mut packed = Self::default();
        packed.starts.push(0);
        for columns in parts {
            for p in 0..columns.pixels() {
                let (rows, values) = columns.pixel(p);
                packed.rows.extend_from_slice(rows);
                packed.values.extend_from_slice(values);
                packed.starts.push(packed.rows.len() as u32);
            }
        }
        packed
    }

    /// Its pixels from `first` on, entry p being pixel `first + p`.
    pub fn from_pixel(&self, first: usize) -> PackedFrom<'_> {
        PackedFrom {
            packed: self,
            first,
        }
    }

    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        4 * (self.starts.len() + self.rows.len() + self.values.len())
    }
}

impl PixelEntries for PackedPixelColumns {
    fn pixel(&self, pixel: usize) -> (&[u32], &[f32]) {
        let range = self.starts[pixel] as usize..self.starts[pixel + 1] as usize;
        (&self.rows[range.clone()], &self.values[range])
    }
}

/// The pixels of a [`PackedPixelColumns`] from one on: a thread's share of them.
pub struct PackedFrom<'a> {
    packed: &'a PackedPixelColumns,
    first: usize,
}

impl PixelEntries for PackedFrom<'_> {
    fn pixel(&self, pixel: usize) -> (&[u32], &[f32]) {
        self.packed.pixel(self.first + pixel)
    }
}

impl PixelColumns<f32> {
    /// Regroups the non-zero pixels `pixels` of images `batch` of `images`; returns itself,
    /// filled.
    pub fn fill_from(
        &mut self,
        images: &SparseImages,
        batch: &[u32],
        pixels: Range<usize>,
    ) -> &Self {
        let within = |row: usize| {
            let (columns, values) = images.image(batch[row] as usize);
            let from = columns.partition_point(|&c| (c as usize) < pixels.start);
            let to = columns.partition_point(|&c| (c as usize) < pixels.end);
            let columns = columns[from..to].iter().map(|&c| c as usize);
            columns.zip(values[from..to].iter().copied())
        };
        self.fill(pixels.clone(), batch.len(), within);
        self
    }
}
