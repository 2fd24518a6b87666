// `dualblade format STORE [--size BYTES] [--force]`: writes a superblock and an empty allocation
// table to a raw block device or a (new or existing) file.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "common/units.h"
#include "store/store.h"

namespace dualblade::cli {

namespace {

struct FormatArgs {
  std::string path;
  std::string size;
  bool force = false;
};

Status RunFormat(const FormatArgs& args) {
  store::FormatOptions opts;
  opts.force = args.force;
  if (!args.size.empty()) {
    DB_ASSIGN_OR_RETURN(opts.size_bytes, ParseSize(args.size));
    if (opts.size_bytes == 0) return Status::InvalidArgument("--size must be more than 0");
  }
  DB_ASSIGN_OR_RETURN(store::Superblock sb, store::Store::Format(args.path, opts));
  std::printf("formatted %s: %s store, uuid %s\n", args.path.c_str(),
              FormatBytes(sb.capacity_bytes).c_str(), store::FormatUuid(sb.uuid).c_str());
  std::printf("  metadata: 2 slots of %s; data area: %s at offset %llu (%llu blocks of %u bytes)\n",
              FormatBytes(sb.meta_slot_bytes).c_str(), FormatBytes(sb.data_bytes).c_str(),
              static_cast<unsigned long long>(sb.data_offset_bytes),
              static_cast<unsigned long long>(sb.data_blocks()), sb.block_bytes);
  return Status::OK();
}

}  // namespace

void AddFormatCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<FormatArgs>();
  CLI::App* cmd = app.add_subcommand(
      "format", "Create a store on a raw block device or a file (refuses one that holds data)");
  cmd->add_option("STORE", args->path, "Block device or file to format")->required();
  cmd->add_option("--size", args->size,
                  "Size of a new store file (K, M, G suffixes); for a device, use only this much");
  cmd->add_flag("--force", args->force,
                "Overwrite a filesystem, partition table, swap, RAID/LVM/LUKS member or older store");
  cmd->callback([args, exit_code] { *exit_code = ReportError("format", RunFormat(*args)); });
}

}  // namespace dualblade::cli
