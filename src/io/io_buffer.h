// IoBuffer: memory for direct I/O staging, mapped anonymously, 2 MiB aligned and advised for
// transparent huge pages, and faulted in up front.
//
// Why not AlignedBuffer: with 4 KiB pages a 1 MiB request spans 256 physically scattered pages,
// and a device that takes fewer segments per command (virtio-blk: 254) must split it; huge pages
// make each request a handful of contiguous segments. Registering the buffer with an io_uring
// engine (IoEngine::RegisterBuffer) also saves pinning those pages on every request.
//
// Thread-safety: none; move it between threads, do not share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace dualblade {

class IoBuffer {
 public:
  IoBuffer() = default;
  // Aborts when the mapping fails (out of memory is not a recoverable input error here). Falls
  // back to ordinary pages where the kernel has no transparent huge pages.
  explicit IoBuffer(size_t size_bytes);
  ~IoBuffer();
  IoBuffer(const IoBuffer&) = delete;
  IoBuffer& operator=(const IoBuffer&) = delete;
  IoBuffer(IoBuffer&& o) noexcept;
  IoBuffer& operator=(IoBuffer&& o) noexcept;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_bytes_; }
  std::span<uint8_t> span() { return {data_, size_bytes_}; }

 private:
  void Release();

  uint8_t* data_ = nullptr;  // 2 MiB aligned, inside the mapping
  size_t size_bytes_ = 0;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
};

}  // namespace dualblade
