//! The tensor types of the GGML family (GGUF's `ggml_type`): their ids as stored in files,
//! block sizes and bytes per block. Every type is known by id so a file is described fully;
//! which of them fukai can dequantize or multiply is [`GgmlType::can_dequantize`].

use std::fmt;

macro_rules! ggml_types {
    ($($name:ident = $id:literal, $block:literal, $bytes:literal;)*) => {
        /// A GGML tensor type. Quantized types store blocks of [`GgmlType::block_size`] values in
        /// [`GgmlType::type_size`] bytes; plain types have blocks of one value.
        #[allow(non_camel_case_types, missing_docs)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum GgmlType {
            $($name,)*
        }

        impl GgmlType {
            /// Every type, in id order.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$name,)*];

            /// The type with GGUF id `id`, or `None` for an id GGML does not define.
            pub fn from_id(id: u32) -> Option<GgmlType> {
                match id {
                    $($id => Some(GgmlType::$name),)*
                    _ => None,
                }
            }
            /// The id GGUF files store for this type.
            pub fn id(self) -> u32 {
                match self {
                    $(GgmlType::$name => $id,)*
                }
            }
            /// Values per block (1 for unquantized types).
            pub fn block_size(self) -> usize {
                match self {
                    $(GgmlType::$name => $block,)*
                }
            }
            /// Bytes per block.
            pub fn type_size(self) -> usize {
                match self {
                    $(GgmlType::$name => $bytes,)*
                }
            }
            /// The name GGML gives the type, e.g. `"Q4_K"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$name => stringify!($name),)*
                }
            }
        }
    };
}

ggml_types! {
    F32 = 0, 1, 4;
    F16 = 1, 1, 2;
    Q4_0 = 2, 32, 18;
    Q4_1 = 3, 32, 20;
    Q5_0 = 6, 32, 22;
    Q5_1 = 7, 32, 24;
    Q8_0 = 8, 32, 34;
    Q8_1 = 9, 32, 40;
    Q2_K = 10, 256, 84;
    Q3_K = 11, 256, 110;
    Q4_K = 12, 256, 144;
    Q5_K = 13, 256, 176;
    Q6_K = 14, 256, 210;
    Q8_K = 15, 256, 292;
    IQ2_XXS = 16, 256, 66;
    IQ2_XS = 17, 256, 74;
    IQ3_XXS = 18, 256, 98;
    IQ1_S = 19, 256, 50;
    IQ4_NL = 20, 32, 18;
    IQ3_S = 21, 256, 110;
    IQ2_S = 22, 256, 82;
    IQ4_XS = 23, 256, 136;
    I8 = 24, 1, 1;
    I16 = 25, 1, 2;
    I32 = 26, 1, 4;
    I64 = 27, 1, 8;
    F64 = 28, 1, 8;
    IQ1_M = 29, 256, 56;
    BF16 = 30, 1, 2;
    TQ1_0 = 34, 256, 54;
    TQ2_0 = 35, 256, 66;
    MXFP4 = 39, 32, 17;
}

impl GgmlType {
    /// Bytes that `n` values of this type take, or `None` when `n` is not a whole number of
    /// blocks or the size overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let b = self.block_size() as u64;
        if !n.is_multiple_of(b) {
            return None;
        }
        (n / b).checked_mul(self.type_size() as u64)
    }
    /// True for the types [`crate::quant::dequantize`] converts to f32.
    pub fn can_dequantize(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
        )
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
