// TFRecord framing over plain, GZIP and ZLIB files (RecordReader / RecordWriter).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include <arrow/status.h>

#include "io/crc32c.h"
#include "io/tfrecord.h"

namespace dlprep::io {
namespace {

constexpr size_t kHeaderSize = 12;  // uint64 length + uint32 masked CRC of the length
constexpr size_t kFooterSize = 4;   // uint32 masked CRC of the data
constexpr size_t kInBufferSize = 256 << 10;
constexpr size_t kOutBufferSize = 1 << 20;

uint64_t LoadLE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint32_t LoadLE32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
         (uint32_t{p[3]} << 24);
}
void StoreLE64(uint64_t v, char* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void StoreLE32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

const char* CompressionFlag(TfRecordCompression c) {
  switch (c) {
    case TfRecordCompression::kGzip:
      return "gzip";
    case TfRecordCompression::kZlib:
      return "zlib";
    case TfRecordCompression::kNone:
      return "none";
    case TfRecordCompression::kAuto:
      break;
  }
  return "auto";
}

/// What the first bytes of a file look like.
struct Sniff {
  bool empty = false;
  bool gzip = false;
  bool zlib = false;
  bool plain = false;  // a valid uncompressed TFRecord header (length CRC checks out)

  explicit Sniff(const uint8_t* b, size_t n) {
    empty = n == 0;
    gzip = n >= 2 && b[0] == 0x1f && b[1] == 0x8b;
    zlib = n >= 2 && (b[0] & 0x0f) == 8 && (b[0] * 256 + b[1]) % 31 == 0;
    plain = n >= kHeaderSize && MaskCrc(Crc32c(b, 8)) == LoadLE32(b + 8);
  }
  TfRecordCompression Detect() const {
    if (plain) return TfRecordCompression::kNone;
    if (gzip) return TfRecordCompression::kGzip;
    if (zlib) return TfRecordCompression::kZlib;
    return TfRecordCompression::kNone;
  }
  std::string Describe() const {
    if (plain) return "an uncompressed TFRecord file; use --compression none (or auto)";
    if (gzip) return "GZIP-compressed; use --compression gzip (or auto)";
    if (zlib) return "ZLIB-compressed; use --compression zlib (or auto)";
    return "neither an uncompressed TFRecord file nor GZIP/ZLIB data (not a TFRecord "
           "file?)";
  }
};

std::string ErrnoText() { return std::strerror(errno); }

/// The uncompressed byte stream of a file: read straight from the descriptor, or
/// inflated in bounded chunks (never the whole file in memory). Errors carry no file
/// name; the reader adds it with the record offset.
class ByteStream {
 public:
  ~ByteStream() {
    if (inflating_) inflateEnd(&zs_);
    if (fd_ >= 0) ::close(fd_);
  }

  arrow::Status Open(TfRecordCompression compression, int fd, int64_t file_size) {
    fd_ = fd;
    compression_ = compression;
    file_size_ = file_size;
    if (compression == TfRecordCompression::kNone) return arrow::Status::OK();
    std::memset(&zs_, 0, sizeof(zs_));
    int bits = compression == TfRecordCompression::kGzip ? 15 + 16 : 15;
    if (inflateInit2(&zs_, bits) != Z_OK) return arrow::Status::IOError("cannot initialise zlib");
    inflating_ = true;
    in_.resize(kInBufferSize);
    return arrow::Status::OK();
  }

  /// Reads up to `n` bytes; fewer only at the end of the stream. An error found after
  /// all `n` bytes were produced (zlib reads the next block header in the same call) is
  /// kept for the next call, so that the records before damage are all returned.
  arrow::Result<size_t> Read(uint8_t* dst, size_t n) {
    if (!pending_.ok()) return pending_;
    if (compression_ == TfRecordCompression::kNone) {
      ARROW_ASSIGN_OR_RAISE(size_t got, ReadFd(dst, n));
      consumed_ += static_cast<int64_t>(got);
      return got;
    }
    zs_.next_out = dst;
    zs_.avail_out = 0;
    size_t done = 0;
    while (done < n) {
      if (zs_.avail_in == 0 && !in_eof_) {
        ARROW_ASSIGN_OR_RAISE(size_t got, ReadFd(in_.data(), in_.size()));
        in_eof_ = got < in_.size();
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(got);
      }
      if (zs_.avail_in == 0 && in_eof_) {
        if (!member_done_ && consumed_ > 0) truncated_ = true;
        break;
      }
      if (member_done_) {
        // Another gzip member (or zlib stream) follows the one that ended.
        inflateReset(&zs_);
        member_done_ = false;
        member_start_ = consumed_;
      }
      size_t want = std::min<size_t>(n - done, 1u << 30);
      zs_.next_out = dst + done;
      zs_.avail_out = static_cast<uInt>(want);
      uInt before_in = zs_.avail_in;
      int ret = inflate(&zs_, Z_NO_FLUSH);
      consumed_ += before_in - zs_.avail_in;
      done += want - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        member_done_ = true;
      } else if (ret == Z_BUF_ERROR) {
        continue;  // needs more input; refilled above
      } else if (ret != Z_OK) {
        pending_ = StreamError(ret);
        if (done == n) return done;
        return pending_;
      }
    }
    return done;
  }

  /// True when the compressed stream ended in the middle of a member.
  bool truncated() const { return truncated_; }

  /// Bytes of the file consumed so far (all of them for an uncompressed file; for a
  /// compressed one, what inflate has used).
  int64_t consumed() const { return consumed_; }

 private:
  arrow::Status StreamError(int ret) {
    const char* flag = CompressionFlag(compression_);
    const std::string why = zs_.msg != nullptr ? zs_.msg : "inflate failed";
    if (consumed_ - member_start_ <= 2 && member_start_ > 0) {
      // The first bytes after a complete member are not the start of another one.
      return arrow::Status::IOError(file_size_ - member_start_, " bytes after the end of the ",
                                    flag, " data are not ", flag, " data (compressed byte offset ",
                                    member_start_, ": ", why, ")");
    }
    if (ret == Z_MEM_ERROR) return arrow::Status::OutOfMemory("inflate: out of memory");
    return arrow::Status::IOError("corrupt ", flag, " data near compressed byte offset ",
                                  consumed_, " (", why, ")");
  }

  arrow::Result<size_t> ReadFd(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::read(fd_, dst + done, n - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        return arrow::Status::IOError("read failed: ", ErrnoText());
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

  int fd_ = -1;
  TfRecordCompression compression_ = TfRecordCompression::kNone;
  int64_t file_size_ = 0;
  z_stream zs_;
  bool inflating_ = false;
  bool in_eof_ = false;
  bool member_done_ = false;
  bool truncated_ = false;
  int64_t consumed_ = 0;
  int64_t member_start_ = 0;  // compressed offset where the current member began
  arrow::Status pending_;     // a stream error kept for the next Read()
  std::vector<uint8_t> in_;
};

class RecordReaderImpl final : public RecordReader {
 public:
  arrow::Status Open(const std::string& path, TfRecordCompression compression) {
    path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return arrow::Status::IOError(path, ": cannot open: ", ErrnoText());
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return arrow::Status::IOError(path, ": not a regular file");
    }
    file_size_ = st.st_size;
    uint8_t head[kHeaderSize];
    ssize_t n = ::pread(fd, head, sizeof(head), 0);
    if (n < 0) {
      ::close(fd);
      return arrow::Status::IOError(path, ": read failed: ", ErrnoText());
    }
    Sniff sniff(head, static_cast<size_t>(n));
    TfRecordCompression actual = compression;
    if (compression == TfRecordCompression::kAuto) {
      actual = sniff.Detect();
    } else if (!sniff.empty) {
      bool matches = (compression == TfRecordCompression::kGzip && sniff.gzip) ||
                     (compression == TfRecordCompression::kZlib && sniff.zlib) ||
                     (compression == TfRecordCompression::kNone &&
                      (sniff.plain || (!sniff.gzip && !sniff.zlib)));
      if (!matches) {
        ::close(fd);
        return arrow::Status::IOError(
            path, ": --compression ", CompressionFlag(compression),
            " does not match the file (bad record header at byte offset 0): it appears to "
            "be ",
            sniff.Describe());
      }
    }
    compression_ = actual;
    arrow::Status opened = stream_.Open(actual, fd, file_size_);
    if (!opened.ok()) return opened.WithMessage(path, ": ", opened.message());
    return arrow::Status::OK();
  }

  arrow::Result<bool> Next(std::string_view* record) override {
    if (state_ == State::kLost) {
      return arrow::Status::IOError(path_, ": cannot read past the corrupt region at byte offset ",
                                    offset_);
    }
    state_ = State::kOk;
    offset_ = pos_;
    record_start_ = stream_.consumed();
    uint8_t header[kHeaderSize];
    ARROW_ASSIGN_OR_RAISE(size_t got, Read(header, kHeaderSize));
    if (got == 0) {
      if (stream_.truncated()) return Lost("compressed stream ends early (truncated file)");
      return false;
    }
    if (got < kHeaderSize) {
      return Lost("truncated record: the file ends inside the 12-byte record header (" +
                  std::to_string(got) + " bytes left)");
    }
    const uint64_t length = LoadLE64(header);
    const uint32_t expected = UnmaskCrc(LoadLE32(header + 8));
    const uint32_t actual = Crc32c(header, 8);
    if (expected != actual) {
      std::string msg = "corrupt record: length CRC mismatch (length field reads " +
                        std::to_string(length) + ")";
      if (offset_ == 0) {
        msg += compression_ == TfRecordCompression::kNone
                   ? "; this does not look like a TFRecord file: it appears to be " +
                         DescribeStart()
                   : "; the decompressed data is not a TFRecord stream";
      }
      return Lost(msg);
    }
    // Bound the length by what is left before any arithmetic on it (a valid length CRC
    // does not make it sane): for a plain file, the rest of the file; for a compressed
    // one, what an int64 stream offset can address (the loop below then stops at the
    // real end of the data).
    const uint64_t data_pos = static_cast<uint64_t>(pos_) + kHeaderSize;
    if (compression_ == TfRecordCompression::kNone) {
      const uint64_t left = static_cast<uint64_t>(file_size_) > data_pos
                                ? static_cast<uint64_t>(file_size_) - data_pos
                                : 0;
      if (length > left || left - length < kFooterSize) {
        return Lost("truncated record: the file ends inside the record data (record needs " +
                    std::to_string(length) + " data bytes + 4 CRC bytes, " +
                    std::to_string(left) + " left)");
      }
    } else {
      const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      if (length > limit - data_pos - kFooterSize) {
        return Lost("corrupt record: the length field reads " + std::to_string(length) +
                    " data bytes, more than any stream holds");
      }
    }
    // Grow the buffer as data arrives, so a huge length in a compressed stream cannot
    // allocate more than the stream really holds.
    const uint64_t total = length + kFooterSize;
    uint64_t have = 0;
    while (have < total) {
      uint64_t target = std::min<uint64_t>(total, std::max<uint64_t>(have * 2, 1 << 20));
      if (buffer_.size() < target) buffer_.resize(target);
      const uint64_t want = target - have;
      ARROW_ASSIGN_OR_RAISE(size_t n, Read(buffer_.data() + have, want));
      have += n;
      if (n < want) break;  // short read: end of stream
    }
    if (have < total) {
      return Lost("truncated record: the file ends inside the record data (record needs " +
                  std::to_string(length) + " data bytes + 4 CRC bytes, " +
                  std::to_string(have) + " left)");
    }
    pos_ += static_cast<int64_t>(kHeaderSize + total);
    const uint32_t data_expected = UnmaskCrc(LoadLE32(buffer_.data() + length));
    const uint32_t data_actual = Crc32c(buffer_.data(), length);
    if (data_expected != data_actual) {
      state_ = State::kSkippable;
      return arrow::Status::IOError(path_, ": corrupt record at byte offset ", offset_,
                                    ": data CRC mismatch (", length, "-byte record)");
    }
    *record = std::string_view(reinterpret_cast<const char*>(buffer_.data()), length);
    return true;
  }

  int64_t record_offset() const override { return offset_; }

  arrow::Result<bool> SkipCorrupt() override {
    switch (state_) {
      case State::kSkippable:
        state_ = State::kOk;
        return true;
      case State::kLost:
        return false;
      case State::kOk:
        break;
    }
    return arrow::Status::Invalid(path_, ": SkipCorrupt() called without a corrupt record");
  }

  const std::string& path() const override { return path_; }

  int64_t lost_bytes() const override {
    return state_ == State::kLost ? std::max<int64_t>(0, file_size_ - record_start_) : 0;
  }

 private:
  enum class State { kOk, kSkippable, kLost };

  // A stream read; a failure of the stream (corrupt compressed data, bytes after the
  // last member, an I/O error) loses the rest of the file.
  arrow::Result<size_t> Read(uint8_t* dst, size_t n) {
    auto got = stream_.Read(dst, n);
    if (!got.ok()) return Lost(got.status().message());
    return got;
  }

  arrow::Status Lost(const std::string& what) {
    state_ = State::kLost;
    return arrow::Status::IOError(path_, ": ", what, " at byte offset ", offset_);
  }

  std::string DescribeStart() const {
    uint8_t head[kHeaderSize];
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "unreadable";
    ssize_t n = ::pread(fd, head, sizeof(head), 0);
    ::close(fd);
    return Sniff(head, n < 0 ? 0 : static_cast<size_t>(n)).Describe();
  }

  std::string path_;
  ByteStream stream_;
  TfRecordCompression compression_ = TfRecordCompression::kNone;
  int64_t file_size_ = 0;
  int64_t pos_ = 0;
  int64_t offset_ = 0;
  int64_t record_start_ = 0;  // file bytes consumed before the current record
  State state_ = State::kOk;
  std::vector<uint8_t> buffer_;
};

class RecordWriterImpl final : public RecordWriter {
 public:
  ~RecordWriterImpl() override {
    if (deflating_) deflateEnd(&zs_);
    if (fd_ >= 0) ::close(fd_);
  }

  arrow::Status Open(const std::string& path, TfRecordCompression compression) {
    path_ = path;
    compression_ = compression == TfRecordCompression::kAuto ? TfRecordCompression::kNone
                                                             : compression;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return arrow::Status::IOError(path, ": cannot create: ", ErrnoText());
    if (compression_ != TfRecordCompression::kNone) {
      std::memset(&zs_, 0, sizeof(zs_));
      int bits = compression_ == TfRecordCompression::kGzip ? 15 + 16 : 15;
      if (deflateInit2(&zs_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, bits, 8,
                       Z_DEFAULT_STRATEGY) != Z_OK) {
        return arrow::Status::IOError(path, ": cannot initialise zlib");
      }
      deflating_ = true;
    }
    out_.reserve(kOutBufferSize);
    return arrow::Status::OK();
  }

  arrow::Status Write(std::string_view record) override {
    char header[kHeaderSize];
    char footer[kFooterSize];
    StoreLE64(record.size(), header);
    StoreLE32(MaskCrc(Crc32c(header, 8)), header + 8);
    StoreLE32(MaskCrc(Crc32c(record.data(), record.size())), footer);
    ARROW_RETURN_NOT_OK(Append(std::string_view(header, kHeaderSize)));
    ARROW_RETURN_NOT_OK(Append(record));
    return Append(std::string_view(footer, kFooterSize));
  }

  arrow::Status WriteFramed(std::string_view framed) override { return Append(framed); }

  arrow::Status Close() override {
    if (fd_ < 0) return arrow::Status::OK();
    if (deflating_) ARROW_RETURN_NOT_OK(Deflate(nullptr, 0, Z_FINISH));
    ARROW_RETURN_NOT_OK(FlushOut());
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return arrow::Status::IOError(path_, ": close failed: ", ErrnoText());
    return arrow::Status::OK();
  }

  int64_t bytes_written() const override {
    return flushed_ + static_cast<int64_t>(out_.size());
  }

 private:
  arrow::Status Append(std::string_view data) {
    if (fd_ < 0) return arrow::Status::Invalid(path_, ": write after Close()");
    if (deflating_) return Deflate(data.data(), data.size(), Z_NO_FLUSH);
    if (out_.size() + data.size() <= kOutBufferSize) {
      out_.append(data);
      return arrow::Status::OK();
    }
    ARROW_RETURN_NOT_OK(FlushOut());
    if (data.size() >= kOutBufferSize / 2) return WriteFd(data.data(), data.size());
    out_.append(data);
    return arrow::Status::OK();
  }

  arrow::Status Deflate(const char* data, size_t size, int flush) {
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    zs_.avail_in = 0;
    size_t left = size;
    while (true) {
      if (zs_.avail_in == 0 && left > 0) {
        uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
        zs_.avail_in = chunk;
        left -= chunk;
      }
      if (out_.size() == kOutBufferSize) ARROW_RETURN_NOT_OK(FlushOut());
      size_t old = out_.size();
      out_.resize(kOutBufferSize);
      zs_.next_out = reinterpret_cast<Bytef*>(out_.data() + old);
      zs_.avail_out = static_cast<uInt>(kOutBufferSize - old);
      int ret = deflate(&zs_, left == 0 ? flush : Z_NO_FLUSH);
      out_.resize(kOutBufferSize - zs_.avail_out);
      if (ret == Z_STREAM_ERROR) return arrow::Status::IOError(path_, ": deflate failed");
      if (flush == Z_FINISH && left == 0) {
        if (ret == Z_STREAM_END) return arrow::Status::OK();
        continue;
      }
      if (zs_.avail_in == 0 && left == 0 && zs_.avail_out != 0) return arrow::Status::OK();
    }
  }

  arrow::Status FlushOut() {
    ARROW_RETURN_NOT_OK(WriteFd(out_.data(), out_.size()));
    out_.clear();
    return arrow::Status::OK();
  }

  arrow::Status WriteFd(const char* data, size_t size) {
    while (size > 0) {
      ssize_t w = ::write(fd_, data, size);
      if (w < 0) {
        if (errno == EINTR) continue;
        return arrow::Status::IOError(path_, ": write failed: ", ErrnoText());
      }
      data += w;
      size -= static_cast<size_t>(w);
      flushed_ += w;
    }
    return arrow::Status::OK();
  }

  std::string path_;
  TfRecordCompression compression_ = TfRecordCompression::kNone;
  int fd_ = -1;
  z_stream zs_;
  bool deflating_ = false;
  std::string out_;
  int64_t flushed_ = 0;
};

}  // namespace

arrow::Result<std::unique_ptr<RecordReader>> RecordReader::Open(
    const std::string& path, TfRecordCompression compression) {
  auto reader = std::make_unique<RecordReaderImpl>();
  ARROW_RETURN_NOT_OK(reader->Open(path, compression));
  return reader;
}

arrow::Result<std::unique_ptr<RecordWriter>> RecordWriter::Open(
    const std::string& path, TfRecordCompression compression) {
  auto writer = std::make_unique<RecordWriterImpl>();
  ARROW_RETURN_NOT_OK(writer->Open(path, compression));
  return writer;
}

}  // namespace dlprep::io
