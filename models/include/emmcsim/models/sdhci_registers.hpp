// The SD Host Controller register map (SD Host Controller Simplified Specification v3.00 and the
// version 4 additions Linux uses, spec/sdhci.md): offsets and the bits the Sdhci model implements,
// with the names Linux's drivers/mmc/host/sdhci.h gives them where it gives one. All registers
// are little-endian.
#pragma once

#include <cstdint>

namespace emmcsim::models::sdhci {

// Offsets.
inline constexpr std::uint32_t kSdmaAddress = 0x00;  // also Argument 2 (the Auto CMD23 argument)
inline constexpr std::uint32_t kBlockSize = 0x04;
inline constexpr std::uint32_t kBlockCount = 0x06;
inline constexpr std::uint32_t kArgument = 0x08;
inline constexpr std::uint32_t kTransferMode = 0x0C;
inline constexpr std::uint32_t kCommand = 0x0E;   // writing its upper byte (0x0F) issues the command
inline constexpr std::uint32_t kResponse = 0x10;  // 128 bits
inline constexpr std::uint32_t kBufferDataPort = 0x20;
inline constexpr std::uint32_t kPresentState = 0x24;
inline constexpr std::uint32_t kHostControl1 = 0x28;
inline constexpr std::uint32_t kPowerControl = 0x29;
inline constexpr std::uint32_t kBlockGapControl = 0x2A;
inline constexpr std::uint32_t kWakeupControl = 0x2B;
inline constexpr std::uint32_t kClockControl = 0x2C;
inline constexpr std::uint32_t kTimeoutControl = 0x2E;
inline constexpr std::uint32_t kSoftwareReset = 0x2F;
inline constexpr std::uint32_t kNormalIntStatus = 0x30;
inline constexpr std::uint32_t kErrorIntStatus = 0x32;
inline constexpr std::uint32_t kNormalIntStatusEnable = 0x34;
inline constexpr std::uint32_t kErrorIntStatusEnable = 0x36;
inline constexpr std::uint32_t kNormalIntSignalEnable = 0x38;
inline constexpr std::uint32_t kErrorIntSignalEnable = 0x3A;
inline constexpr std::uint32_t kAutoCmdErrorStatus = 0x3C;
inline constexpr std::uint32_t kHostControl2 = 0x3E;
inline constexpr std::uint32_t kCapabilities = 0x40;  // 64 bits
inline constexpr std::uint32_t kMaxCurrent = 0x48;    // 64 bits
inline constexpr std::uint32_t kForceAutoCmdError = 0x50;
inline constexpr std::uint32_t kForceErrorInt = 0x52;
inline constexpr std::uint32_t kAdmaErrorStatus = 0x54;
inline constexpr std::uint32_t kAdmaAddress = 0x58;  // 64 bits; in version 4 mode also SDMA's address
inline constexpr std::uint32_t kAdmaAddressHigh = 0x5C;
inline constexpr std::uint32_t kPresetValues = 0x60;  // 8 × 16 bits, in this order:
inline constexpr std::uint32_t kPresetInitialization = 0x60;
inline constexpr std::uint32_t kPresetDefaultSpeed = 0x62;
inline constexpr std::uint32_t kPresetHighSpeed = 0x64;
inline constexpr std::uint32_t kPresetSdr12 = 0x66;
inline constexpr std::uint32_t kPresetSdr25 = 0x68;
inline constexpr std::uint32_t kPresetSdr50 = 0x6A;
inline constexpr std::uint32_t kPresetSdr104 = 0x6C;  // Linux: HS200
inline constexpr std::uint32_t kPresetDdr50 = 0x6E;   // Linux: DDR52
inline constexpr std::uint32_t kSlotIntStatus = 0xFC;
inline constexpr std::uint32_t kHostVersion = 0xFE;
inline constexpr std::uint32_t kRegisterSpace = 0x100;

// Block size (0x04): bits 11:0 the block length, 14:12 the SDMA buffer boundary (4 KiB << n).
inline constexpr std::uint16_t kBlockLengthMask = 0x0FFF;
inline constexpr unsigned kSdmaBoundaryShift = 12;

// Transfer mode (0x0C).
inline constexpr std::uint16_t kTrnDmaEnable = 1u << 0;
inline constexpr std::uint16_t kTrnBlockCountEnable = 1u << 1;
inline constexpr std::uint16_t kTrnAutoCmdMask = 3u << 2;
inline constexpr std::uint16_t kTrnAutoCmd12 = 1u << 2;
inline constexpr std::uint16_t kTrnAutoCmd23 = 2u << 2;
inline constexpr std::uint16_t kTrnAutoCmdAutoSelect = 3u << 2;  // version 4.10: by host control 2's CMD23 enable
inline constexpr std::uint16_t kTrnRead = 1u << 4;               // card to host
inline constexpr std::uint16_t kTrnMultiBlock = 1u << 5;

// Command (0x0E).
inline constexpr std::uint16_t kCmdResponseMask = 3u << 0;
inline constexpr std::uint16_t kCmdResponseNone = 0;
inline constexpr std::uint16_t kCmdResponseLong = 1;       // 136 bits (R2)
inline constexpr std::uint16_t kCmdResponseShort = 2;      // 48 bits (R1, R3)
inline constexpr std::uint16_t kCmdResponseShortBusy = 3;  // 48 bits with busy (R1b)
inline constexpr std::uint16_t kCmdCrcCheck = 1u << 3;
inline constexpr std::uint16_t kCmdIndexCheck = 1u << 4;
inline constexpr std::uint16_t kCmdDataPresent = 1u << 5;
inline constexpr std::uint16_t kCmdTypeMask = 3u << 6;
inline constexpr std::uint16_t kCmdTypeAbort = 3u << 6;
inline constexpr unsigned kCmdIndexShift = 8;
inline constexpr std::uint16_t command_word(std::uint8_t index, std::uint16_t flags) {
  return static_cast<std::uint16_t>((std::uint16_t{index} << kCmdIndexShift) | flags);
}

// Present state (0x24), read-only.
inline constexpr std::uint32_t kCmdInhibit = 1u << 0;
inline constexpr std::uint32_t kDataInhibit = 1u << 1;
inline constexpr std::uint32_t kDataLineActive = 1u << 2;
inline constexpr std::uint32_t kWriteTransferActive = 1u << 8;
inline constexpr std::uint32_t kReadTransferActive = 1u << 9;
inline constexpr std::uint32_t kBufferWriteEnable = 1u << 10;
inline constexpr std::uint32_t kBufferReadEnable = 1u << 11;
inline constexpr std::uint32_t kCardInserted = 1u << 16;
inline constexpr std::uint32_t kCardStateStable = 1u << 17;
inline constexpr std::uint32_t kCardDetectPinLevel = 1u << 18;
inline constexpr std::uint32_t kWriteProtectPinLevel = 1u << 19;  // 1: writes allowed
inline constexpr unsigned kDataLineLevelShift = 20;               // DAT[3:0]; DAT0 low while busy
inline constexpr std::uint32_t kCmdLineLevel = 1u << 24;

// Host control 1 (0x28).
inline constexpr std::uint8_t kCtrlLed = 1u << 0;
inline constexpr std::uint8_t kCtrl4BitBus = 1u << 1;
inline constexpr std::uint8_t kCtrlHighSpeed = 1u << 2;
inline constexpr std::uint8_t kCtrlDmaMask = 3u << 3;
inline constexpr std::uint8_t kCtrlSdma = 0u << 3;
inline constexpr std::uint8_t kCtrlAdma32 = 2u << 3;
inline constexpr std::uint8_t kCtrlAdma64 = 3u << 3;
inline constexpr std::uint8_t kCtrl8BitBus = 1u << 5;

// Power control (0x29).
inline constexpr std::uint8_t kPowerOn = 1u << 0;
inline constexpr std::uint8_t kPowerVoltageMask = 7u << 1;
inline constexpr std::uint8_t kPower180 = 5u << 1;
inline constexpr std::uint8_t kPower300 = 6u << 1;
inline constexpr std::uint8_t kPower330 = 7u << 1;

// Clock control (0x2C): divider bits 7:0 in 15:8, bits 9:8 in 7:6 (10-bit divided clock mode).
inline constexpr std::uint16_t kClockInternalEnable = 1u << 0;
inline constexpr std::uint16_t kClockInternalStable = 1u << 1;
inline constexpr std::uint16_t kClockCardEnable = 1u << 2;
inline constexpr std::uint16_t kClockPllEnable = 1u << 3;  // version 4.10
inline constexpr unsigned kDividerShift = 8;
inline constexpr unsigned kDividerHighShift = 6;
inline constexpr std::uint16_t divider_bits(std::uint16_t divider) {
  return static_cast<std::uint16_t>(((divider & 0xFF) << kDividerShift) | (((divider >> 8) & 3) << kDividerHighShift));
}

// Software reset (0x2F).
inline constexpr std::uint8_t kResetAll = 1u << 0;
inline constexpr std::uint8_t kResetCmd = 1u << 1;
inline constexpr std::uint8_t kResetData = 1u << 2;

// Normal interrupt status (0x30), write 1 to clear.
inline constexpr std::uint16_t kIntCommandComplete = 1u << 0;
inline constexpr std::uint16_t kIntTransferComplete = 1u << 1;
inline constexpr std::uint16_t kIntBlockGap = 1u << 2;
inline constexpr std::uint16_t kIntDma = 1u << 3;
inline constexpr std::uint16_t kIntBufferWriteReady = 1u << 4;
inline constexpr std::uint16_t kIntBufferReadReady = 1u << 5;
inline constexpr std::uint16_t kIntCardInsertion = 1u << 6;
inline constexpr std::uint16_t kIntCardRemoval = 1u << 7;
inline constexpr std::uint16_t kIntCard = 1u << 8;
inline constexpr std::uint16_t kIntErrorSummary = 1u << 15;  // read-only: any error status bit

// Error interrupt status (0x32), write 1 to clear.
inline constexpr std::uint16_t kErrCommandTimeout = 1u << 0;
inline constexpr std::uint16_t kErrCommandCrc = 1u << 1;
inline constexpr std::uint16_t kErrCommandEndBit = 1u << 2;
inline constexpr std::uint16_t kErrCommandIndex = 1u << 3;
inline constexpr std::uint16_t kErrDataTimeout = 1u << 4;
inline constexpr std::uint16_t kErrDataCrc = 1u << 5;
inline constexpr std::uint16_t kErrDataEndBit = 1u << 6;
inline constexpr std::uint16_t kErrCurrentLimit = 1u << 7;
inline constexpr std::uint16_t kErrAutoCmd = 1u << 8;
inline constexpr std::uint16_t kErrAdma = 1u << 9;
inline constexpr std::uint16_t kErrTuning = 1u << 10;
inline constexpr std::uint16_t kErrSystemBus = 1u << 12;  // vendor bit: an SDMA access the bus refused

// Auto CMD error status (0x3C).
inline constexpr std::uint16_t kAutoCmd12NotExecuted = 1u << 0;
inline constexpr std::uint16_t kAutoCmdTimeout = 1u << 1;
inline constexpr std::uint16_t kAutoCmdIndex = 1u << 4;
inline constexpr std::uint16_t kAutoCmdNotIssued = 1u << 7;  // the command after a failed Auto CMD23

// Host control 2 (0x3E).
inline constexpr std::uint16_t kCtrl2UhsMask = 7u << 0;  // UHS mode select: stored, not acted on
inline constexpr std::uint16_t kCtrl2UhsSdr12 = 0;
inline constexpr std::uint16_t kCtrl2UhsSdr25 = 1;  // GL9763E's Linux driver: HS
inline constexpr std::uint16_t kCtrl2UhsSdr50 = 2;
inline constexpr std::uint16_t kCtrl2UhsSdr104 = 3;        // Linux: HS200
inline constexpr std::uint16_t kCtrl2UhsDdr50 = 4;         // Linux: DDR52
inline constexpr std::uint16_t kCtrl2Hs400 = 5;            // Linux's SDHCI_CTRL_HS400 (vendor use; GL9763E: 7)
inline constexpr std::uint16_t kCtrl2Signal180 = 1u << 3;  // 1.8 V signalling; stays set once stable
inline constexpr std::uint16_t kCtrl2DriverTypeMask = 3u << 4;
inline constexpr std::uint16_t kCtrl2ExecuteTuning = 1u << 6;
inline constexpr std::uint16_t kCtrl2TunedClock = 1u << 7;        // sampling clock select
inline constexpr std::uint16_t kCtrl2Adma2LengthMode = 1u << 10;  // 4.10: 26-bit lengths (not supported)
inline constexpr std::uint16_t kCtrl2Cmd23Enable = 1u << 11;      // 4.10: Auto CMD auto select picks CMD23
inline constexpr std::uint16_t kCtrl2Version4Enable = 1u << 12;   // 4.00: version 4 mode
inline constexpr std::uint16_t kCtrl2Addressing64 = 1u << 13;     // 4.00: 64-bit system addresses
inline constexpr std::uint16_t kCtrl2AsyncInterrupt = 1u << 14;   // 4.00 (not supported)
inline constexpr std::uint16_t kCtrl2PresetEnable = 1u << 15;

// Capabilities (0x40, low 32 bits).
inline constexpr unsigned kCapTimeoutClockShift = 0;  // 5:0, unit in bit 7 (1: MHz)
inline constexpr std::uint32_t kCapTimeoutClockMhz = 1u << 7;
inline constexpr unsigned kCapBaseClockShift = 8;  // 15:8, MHz
inline constexpr unsigned kCapMaxBlockShift = 16;  // 17:16: 512 << n
inline constexpr std::uint32_t kCap8Bit = 1u << 18;
inline constexpr std::uint32_t kCapAdma2 = 1u << 19;
inline constexpr std::uint32_t kCapHighSpeed = 1u << 21;
inline constexpr std::uint32_t kCapSdma = 1u << 22;
inline constexpr std::uint32_t kCapVoltage330 = 1u << 24;
inline constexpr std::uint32_t kCapVoltage300 = 1u << 25;
inline constexpr std::uint32_t kCapVoltage180 = 1u << 26;
inline constexpr std::uint32_t kCapAddressing64V4 = 1u << 27;  // 4.10: 64-bit system addresses in version 4 mode
inline constexpr std::uint32_t kCapAddressing64 = 1u << 28;    // 64-bit system bus (version 3: ADMA2 64-bit)
inline constexpr std::uint32_t kCapSlotEmbedded = 1u << 30;
// Capabilities (0x44, high 32 bits).
inline constexpr std::uint32_t kCap1Sdr104 = 1u << 1;
inline constexpr std::uint32_t kCap1Ddr50 = 1u << 2;

// ADMA error status (0x54).
inline constexpr std::uint8_t kAdmaErrorStateMask = 3;
inline constexpr std::uint8_t kAdmaStateStop = 0;
inline constexpr std::uint8_t kAdmaStateFetch = 1;
inline constexpr std::uint8_t kAdmaStateTransfer = 3;
inline constexpr std::uint8_t kAdmaLengthMismatch = 1u << 2;

// Preset values (0x60..0x6F): the SD clock divider and driver strength for each bus speed.
inline constexpr std::uint16_t kPresetDividerMask = 0x3FF;  // 10-bit divided clock mode's N
inline constexpr std::uint16_t kPresetClockGenerator = 1u << 10;
inline constexpr unsigned kPresetDriverStrengthShift = 14;

// Host controller version (0xFE): specification version in bits 7:0, vendor version in 15:8.
inline constexpr std::uint16_t kSpecVersion300 = 2;
inline constexpr std::uint16_t kSpecVersion400 = 3;
inline constexpr std::uint16_t kSpecVersion410 = 4;
inline constexpr std::uint16_t kSpecVersion420 = 5;

}  // namespace emmcsim::models::sdhci
