// Stub of Misc/FileHelper.h (the call the plugin makes).
#pragma once

#include "CoreMinimal.h"

class IFileManager;

struct FFileHelper
{
	static bool SaveArrayToFile(TArrayView<const uint8> Array, const TCHAR* Filename, IFileManager* FileManager = nullptr, uint32 WriteFlags = 0)
	{
		(void)Array;
		(void)Filename;
		(void)FileManager;
		(void)WriteFlags;
		return true;
	}
};
