#include "store/signatures.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/unique_fd.h"
#include "store/superblock.h"

namespace dualblade::store {
namespace {

// Owns a blkid probe.
struct Probe {
  blkid_probe pr = nullptr;
  ~Probe() {
    if (pr != nullptr) blkid_free_probe(pr);
  }
};

void EnableEverything(blkid_probe pr) {
  blkid_probe_enable_superblocks(pr, 1);
  blkid_probe_set_superblocks_flags(
      pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
  blkid_probe_enable_partitions(pr, 1);
  blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
}

std::string Lookup(blkid_probe pr, const char* name) {
  const char* v = nullptr;
  size_t len = 0;
  if (blkid_probe_lookup_value(pr, name, &v, &len) != 0 || v == nullptr) return {};
  return std::string(v, strnlen(v, len));
}

std::string WithArticle(const std::string& word) {
  const bool vowel = !word.empty() && std::string("aeiouAEIOU").find(word[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + word;
}

std::string DescribeProbed(blkid_probe pr) {
  if (std::string pt = Lookup(pr, "PTTYPE"); !pt.empty()) {
    return WithArticle(pt) + " partition table";
  }
  const std::string type = Lookup(pr, "TYPE");
  const std::string usage = Lookup(pr, "USAGE");
  if (type == "swap") return "a swap signature";
  if (usage == "filesystem") return WithArticle(type) + " filesystem";
  if (usage == "raid") return WithArticle(type) + " signature (a RAID or LVM member)";
  if (usage == "crypto") return WithArticle(type) + " signature (an encrypted volume member)";
  if (!type.empty()) return WithArticle(type) + " signature";
  return "an unidentified signature";
}

}  // namespace

Result<std::optional<std::string>> DescribeExistingContent(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("cannot open " + path + " to check its contents", errno);

  Probe probe;
  probe.pr = blkid_new_probe();
  if (probe.pr == nullptr) return Status::IOError("cannot create a libblkid probe");
  if (blkid_probe_set_device(probe.pr, fd.get(), 0, 0) != 0) {
    return Status::IOError("libblkid cannot probe " + path);
  }
  EnableEverything(probe.pr);
  const int rc = blkid_do_safeprobe(probe.pr);
  if (rc == 0) return std::optional<std::string>(DescribeProbed(probe.pr));
  if (rc == -2) return std::optional<std::string>("several conflicting signatures");
  if (rc < 0) return Status::IOError("libblkid failed to probe " + path + " for signatures");

  // Nothing libblkid knows; anything non-zero at the start is still someone's data.
  const size_t n = static_cast<size_t>(kCheckedPrefixBytes);  // reads stop early at the end
  std::vector<uint8_t> buf(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd.get(), buf.data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus("cannot read the start of " + path, errno);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  buf.resize(got);
  if (HasSuperblockMagic(buf)) return std::optional<std::string>("a dualblade store");
  auto it = std::find_if(buf.begin(), buf.end(), [](uint8_t b) { return b != 0; });
  if (it != buf.end()) {
    return std::optional<std::string>("data in its first MiB (a non-zero byte at offset " +
                                      std::to_string(it - buf.begin()) + ")");
  }
  return std::optional<std::string>();
}

Status WipeSignatures(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("cannot open " + path + " to erase its signatures", errno);
  Probe probe;
  probe.pr = blkid_new_probe();
  if (probe.pr == nullptr) return Status::IOError("cannot create a libblkid probe");
  if (blkid_probe_set_device(probe.pr, fd.get(), 0, 0) != 0) {
    return Status::IOError("libblkid cannot probe " + path);
  }
  EnableEverything(probe.pr);
  // blkid_do_probe walks one signature at a time; after a wipe it steps back and looks again,
  // so nested and repeated signatures all go (the loop wipefs runs).
  int rc;
  while ((rc = blkid_do_probe(probe.pr)) == 0) {
    if (blkid_do_wipe(probe.pr, 0) != 0) {
      return ErrnoStatus("cannot erase a signature on " + path, errno ? errno : EIO);
    }
  }
  if (rc < 0) return Status::IOError("libblkid failed to probe " + path + " for signatures");
  if (::fsync(fd.get()) != 0) return ErrnoStatus("fsync " + path, errno);
  return Status::OK();
}

}  // namespace dualblade::store
