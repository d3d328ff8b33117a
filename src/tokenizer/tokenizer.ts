/**
 * The tokenizer interface shared by the llama2.c (`tokenizer.bin`) and Hugging Face (`tokenizer.json`) backends.
 */
export interface EncodeOptions {
  /** Prepend the BOS token. Default: the tokenizer's own convention (llama2.c and Llama: yes; byte-level BPE without a BOS template: no). */
  bos?: boolean;
  /** Append the (first) EOS token. Default false. */
  eos?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  /**
   * At least the UTF-8 bytes of text one token stands for (the longest vocabulary entry): a text of B bytes encodes to
   * at least B / maxTokenLength tokens, so a prompt can be refused as too long before it is tokenized.
   */
  readonly maxTokenLength: number;
  /** Text to token ids. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Token ids to text; BOS/EOS and other special tokens are dropped, the SentencePiece dummy-prefix space is stripped. */
  decode(ids: readonly number[]): string;
  /**
   * run.c-style streaming piece for token `id` following `prev`, as raw bytes.
   * Bytes (not a string) because one character may be split over several byte-fallback tokens:
   * concatenate the pieces and UTF-8-decode the whole stream. Returns an empty array for tokens that print nothing.
   */
  decodePiece(prev: number, id: number): Uint8Array;
}
